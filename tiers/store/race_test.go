//go:build race

package store_test

// raceEnabled: the race detector makes every restore (a fresh 32 MiB
// memtable) several times slower, so exhaustive loops take a sample.
const raceEnabled = true
