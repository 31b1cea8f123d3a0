package store

import (
	"bytes"
	"encoding/binary"

	"github.com/tidwall/btree"
)

// memHints are the writer's path hints into the in-memory tree: where its
// last change of a family landed, so the next one starts its search there
// (btree.PathHint: at each level the item the last search ended at, tried
// first). They never change what a search finds, only where it starts.
//
// A family's new entries mostly land beside its last one: new case ids
// and deadlines grow. Not the grid index's (g/) and the nearby lists'
// (N/): a district's reports come from its hundreds of grids in no order,
// so the family's last change is anywhere, and the search starts from a
// wrong place. Each grid's entries (g/, by case id) and each nearby
// class's (N/, a grid's class, by time) do grow, so those keys have a hint
// per grid or class: a report lands beside the last one of its grid
// (BENCHMARKS.md, "Update, 2026-12-07 00:40 UTC").
type memHints struct {
	family [256]btree.PathHint
	// group holds the hints of grids and nearby classes, at most
	// maxGroupHints; a grid or class first seen past that uses its
	// family's hint.
	group map[string]*btree.PathHint
}

// maxGroupHints bounds the grids' and classes' hints (some 100 bytes
// each): a district's grids and their classes stay well below it.
const maxGroupHints = 1 << 16

// of is the hint key's search starts from.
func (h *memHints) of(key []byte) *btree.PathHint {
	if g := hintGroup(key); g != nil {
		if p := h.group[string(g)]; p != nil {
			return p
		}
		if len(h.group) < maxGroupHints {
			if h.group == nil {
				h.group = make(map[string]*btree.PathHint)
			}
			p := new(btree.PathHint)
			h.group[string(g)] = p
			return p
		}
	}
	return &h.family[memHint(key)]
}

// memHint is the family of key, whose hint it uses without a group.
func memHint(key []byte) byte {
	switch key[0] {
	case 'N':
		return key[2] // the open and the closed entries apart
	case 'D':
		return key[2] - 'a' + 'A' // O P (the overdue lists): apart from every other family
	}
	return key[0]
}

// hintGroup is the part of key that names its grid (g/<grid>/) or its
// nearby class (N/o/ or N/c/, then the class: nearClassPrefix); nil for
// any other key, or one not in that shape.
func hintGroup(key []byte) []byte {
	switch {
	case len(key) > 2 && key[0] == 'g' && key[1] == '/':
		i := bytes.IndexByte(key[2:], '/')
		if i < 0 {
			return nil
		}
		return key[:2+i+1]
	case len(key) > 4 && key[0] == 'N' && key[1] == '/' && key[3] == '/':
		n := 4
		for range 3 { // grid, major, minor
			l, k := binary.Uvarint(key[n:])
			if k <= 0 || l > uint64(len(key)-n-k) {
				return nil
			}
			n += k + int(l)
		}
		if n += 4; n > len(key) { // the kind
			return nil
		}
		return key[:n]
	}
	return nil
}
