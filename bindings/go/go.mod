module pgsess.example/pgsess

go 1.19
