package node

import "time"

// valueLogGCEvery is how often a replica collects its state store's value
// log (store.RunGC): the old versions of cases are garbage there.
const valueLogGCEvery = 5 * time.Minute

// collectValueLog runs the state store's value-log collection every
// valueLogGCEvery until the node shuts down. The store orders it with its
// Close and Restore.
func (n *Node) collectValueLog() {
	t := time.NewTicker(valueLogGCEvery)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
			n.store.RunGC()
		}
	}
}
