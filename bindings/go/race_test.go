//go:build race

package pgsess

const raceEnabled = true
