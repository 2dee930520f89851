module github.com/pgsess/pgsess/examples/go

go 1.19

require github.com/pgsess/pgsess/bindings/go v0.0.0

replace github.com/pgsess/pgsess/bindings/go => ../../bindings/go
