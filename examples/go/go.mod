module pgsess.example/demo

go 1.19

require pgsess.example/pgsess v0.0.0

replace pgsess.example/pgsess => ../../bindings/go
