module github.com/pgsess/pgsess/bindings/go

go 1.19
