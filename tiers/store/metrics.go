package store

import (
	"expvar"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Badger publishes its internals as expvar variables ("badger_…"). Most
// are counters over every badger database of the process (with one
// replica per cityhubd process, this replica's state store and, with
// raft.log_engine badger, its raft log); the sizes and the pending writes
// are per database directory, and this store exports its own.
type badgerCollector struct {
	dir      string
	s        *Store
	lsm      *prometheus.Desc
	vlog     *prometheus.Desc
	pending  *prometheus.Desc
	counters []badgerVar
	levels   []badgerVar
	running  *prometheus.Desc
	memIndex *prometheus.Desc
	memBuild *prometheus.Desc
	memBlock *prometheus.Desc
	memApply *prometheus.Desc
	memCopy  *prometheus.Desc
}

// badgerVar is one of badger's process-wide expvar counters.
type badgerVar struct {
	expvar string
	desc   *prometheus.Desc
}

func newBadgerCollector(s *Store, dir string) *badgerCollector {
	c := &badgerCollector{
		dir: dir, s: s,
		lsm:      prometheus.NewDesc("cityhub_badger_lsm_size_bytes", "Size of the state store's LSM tree (SST files) on disk.", nil, nil),
		vlog:     prometheus.NewDesc("cityhub_badger_vlog_size_bytes", "Size of the state store's value log on disk.", nil, nil),
		pending:  prometheus.NewDesc("cityhub_badger_pending_writes", "Write requests waiting for the state store's memtable.", nil, nil),
		running:  prometheus.NewDesc("cityhub_badger_compaction_tables", "Tables being compacted now (every badger database of the process).", nil, nil),
		memIndex: prometheus.NewDesc("cityhub_store_memory_index_entries", "Entries of the case indexes and digests the state store keeps in memory.", nil, nil),
		memBlock: prometheus.NewDesc("cityhub_store_memory_index_block_bytes", "Bytes of the blocks the in-memory index entries are kept in (every state store of the process), retired blocks that a reader may still hold included.", nil, nil),
		memBuild: prometheus.NewDesc("cityhub_store_memory_index_build_seconds", "How long the last rebuild of the in-memory case indexes took (at open or after a restore).", nil, nil),
		memApply: prometheus.NewDesc("cityhub_store_memory_index_commits_total", "Commits whose changes were applied to the in-memory case indexes (in place).", nil, nil),
		memCopy:  prometheus.NewDesc("cityhub_store_memory_index_copies_total", "Copies of the in-memory case indexes taken for readers, at most one a commit: the commit after a copy copies the tree nodes it changes, one without copies none.", nil, nil),
	}
	for _, v := range []struct{ expvar, name, help string }{
		{"badger_write_bytes_user", "cityhub_badger_written_bytes_total", "Bytes written by badger's users (keys and values), every badger database of the process."},
		{"badger_put_num_user", "cityhub_badger_puts_total", "Keys written, every badger database of the process."},
		{"badger_get_num_user", "cityhub_badger_gets_total", "Key lookups, every badger database of the process."},
		{"badger_read_bytes_lsm", "cityhub_badger_lsm_read_bytes_total", "Bytes read from LSM tables, every badger database of the process."},
		{"badger_read_bytes_vlog", "cityhub_badger_vlog_read_bytes_total", "Bytes read from value logs, every badger database of the process."},
		{"badger_write_bytes_vlog", "cityhub_badger_vlog_written_bytes_total", "Bytes written to value logs, every badger database of the process."},
		{"badger_write_bytes_l0", "cityhub_badger_l0_written_bytes_total", "Bytes flushed from memtables to level 0, every badger database of the process."},
	} {
		c.counters = append(c.counters, badgerVar{v.expvar, prometheus.NewDesc(v.name, v.help, nil, nil)})
	}
	c.levels = []badgerVar{{"badger_write_bytes_compaction", prometheus.NewDesc("cityhub_badger_compaction_written_bytes_total",
		"Bytes written by compactions into each LSM level, every badger database of the process.", []string{"level"}, nil)}}
	return c
}

func (c *badgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lsm
	ch <- c.vlog
	ch <- c.pending
	ch <- c.running
	ch <- c.memIndex
	ch <- c.memBuild
	ch <- c.memBlock
	ch <- c.memApply
	ch <- c.memCopy
	for _, v := range c.counters {
		ch <- v.desc
	}
	for _, v := range c.levels {
		ch <- v.desc
	}
}

func (c *badgerCollector) Collect(ch chan<- prometheus.Metric) {
	lsm, vlog := c.s.db.Size()
	ch <- prometheus.MustNewConstMetric(c.lsm, prometheus.GaugeValue, float64(lsm))
	ch <- prometheus.MustNewConstMetric(c.vlog, prometheus.GaugeValue, float64(vlog))
	pending := 0.0
	if m, ok := expvar.Get("badger_write_pending_num_memtable").(*expvar.Map); ok {
		pending = expvarNumber(m.Get(c.dir))
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, pending)
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, expvarNumber(expvar.Get("badger_compaction_current_num_lsm")))
	ch <- prometheus.MustNewConstMetric(c.memIndex, prometheus.GaugeValue, float64(c.s.mem.entries()))
	ch <- prometheus.MustNewConstMetric(c.memBuild, prometheus.GaugeValue, time.Duration(c.s.mem.buildNanos.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(c.memBlock, prometheus.GaugeValue, float64(blocks.bound()*memBlockSize))
	ch <- prometheus.MustNewConstMetric(c.memApply, prometheus.CounterValue, float64(c.s.mem.commits.Load()))
	ch <- prometheus.MustNewConstMetric(c.memCopy, prometheus.CounterValue, float64(c.s.mem.copies.Load()))
	for _, v := range c.counters {
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, expvarNumber(expvar.Get(v.expvar)))
	}
	for _, v := range c.levels {
		m, ok := expvar.Get(v.expvar).(*expvar.Map)
		if !ok {
			continue
		}
		m.Do(func(kv expvar.KeyValue) {
			ch <- prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, expvarNumber(kv.Value), kv.Key)
		})
	}
}

// expvarNumber reads an expvar.Int or Float (0 for anything else or nil).
func expvarNumber(v expvar.Var) float64 {
	switch x := v.(type) {
	case *expvar.Int:
		return float64(x.Value())
	case *expvar.Float:
		return x.Value()
	case nil:
		return 0
	default:
		f, _ := strconv.ParseFloat(v.String(), 64)
		return f
	}
}

// Collectors are the store's Prometheus collectors (badger's internals).
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{newBadgerCollector(s, s.db.Opts().Dir)}
}
