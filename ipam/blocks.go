package ipam

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/btree"
)

// u128 is an address of a known family as an unsigned integer; comparing
// two words is several times cheaper than netip.Addr.Compare, and the free
// blocks are compared O(log n) times per operation. IPv4 addresses use lo
// only.
type u128 struct{ hi, lo uint64 }

func toU128(ip netip.Addr) u128 {
	if ip.Is4() {
		b := ip.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := ip.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr(f Family) netip.Addr {
	if f == IPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) less(v u128) bool { return u.hi < v.hi || (u.hi == v.hi && u.lo < v.lo) }

// next and prev wrap around; callers only use them away from the ends.
func (u u128) next() u128 {
	if u.lo == ^uint64(0) {
		return u128{hi: u.hi + 1}
	}
	return u128{hi: u.hi, lo: u.lo + 1}
}

func (u u128) prev() u128 {
	if u.lo == 0 {
		return u128{hi: u.hi - 1, lo: ^uint64(0)}
	}
	return u128{hi: u.hi, lo: u.lo - 1}
}

func (u u128) isMax() bool { return u.hi == ^uint64(0) && u.lo == ^uint64(0) }

// block is an inclusive range of free addresses of one family.
type block struct {
	from, to u128
}

func blockLess(a, b block) bool { return a.from.less(b.from) }

// freeSet holds the free addresses of one pool and family as disjoint,
// never adjacent blocks ordered by first address. With avoid-buggy-ips,
// IPv4 addresses ending in .0 or .255 are not part of the pool; rather than
// cutting every /24 out of the blocks up front (2^17 blocks for a /8), they
// are dropped lazily when they reach the front of the first block, which is
// where addresses are taken from. The set therefore holds every allocatable
// free address, plus possibly buggy ones that are never handed out.
type freeSet struct {
	family     Family
	tree       *btree.BTreeG[block]
	avoidBuggy bool
}

func newFreeSet(f Family, avoidBuggy bool, fl *btree.FreeListG[block]) *freeSet {
	return &freeSet{family: f, tree: btree.NewWithFreeListG(16, blockLess, fl), avoidBuggy: avoidBuggy && f == IPv4}
}

// isBuggy reports whether ip is an IPv4 address ending in .0 or .255, which
// some CPE firmwares drop as smurf-attack protection.
func isBuggy(ip netip.Addr) bool {
	if !ip.Is4() {
		return false
	}
	b := ip.As4()
	return b[3] == 0 || b[3] == 255
}

func isBuggyU(u u128) bool { b := u.lo & 0xff; return b == 0 || b == 0xff }

// addRange adds a configured range; call coalesce after the last one.
func (f *freeSet) addRange(from, to netip.Addr) {
	f.tree.ReplaceOrInsert(block{from: toU128(from), to: toU128(to)})
}

// lowest returns the lowest allocatable free address, dropping buggy
// addresses it meets at the front of the first block. Amortised O(log n):
// each buggy address is dropped once (they are never allocated, so never
// put back).
func (f *freeSet) lowest() (netip.Addr, bool) {
	for {
		b, ok := f.tree.Min()
		if !ok {
			return netip.Addr{}, false
		}
		if !f.avoidBuggy || !isBuggyU(b.from) {
			return b.from.addr(f.family), true
		}
		f.tree.Delete(b)
		if b.from != b.to {
			f.tree.ReplaceOrInsert(block{from: b.from.next(), to: b.to})
		}
	}
}

// containing returns the block holding u. O(log n).
func (f *freeSet) containing(u u128) (block, bool) {
	var found block
	var ok bool
	f.tree.DescendLessOrEqual(block{from: u}, func(b block) bool {
		found, ok = b, !b.to.less(u)
		return false
	})
	return found, ok
}

// isFree reports whether ip is in the set. O(log n).
func (f *freeSet) isFree(ip netip.Addr) bool {
	_, ok := f.containing(toU128(ip))
	return ok
}

// take removes ip from the set, splitting its block. It reports false if ip
// was not in the set. O(log n).
func (f *freeSet) take(ip netip.Addr) bool {
	u := toU128(ip)
	b, ok := f.containing(u)
	if !ok {
		return false
	}
	switch {
	case b.from == u && b.to == u:
		f.tree.Delete(b)
	case b.from == u:
		f.tree.Delete(b)
		f.tree.ReplaceOrInsert(block{from: u.next(), to: b.to})
	case b.to == u:
		f.tree.ReplaceOrInsert(block{from: b.from, to: u.prev()})
	default:
		f.tree.ReplaceOrInsert(block{from: b.from, to: u.prev()})
		f.tree.ReplaceOrInsert(block{from: u.next(), to: b.to})
	}
	return true
}

// put returns ip, which must not be in the set, merging it with the blocks
// ending just before or starting just after it. O(log n).
func (f *freeSet) put(ip netip.Addr) {
	u := toU128(ip)
	var prev, next block
	var hasPrev, hasNext bool
	f.tree.DescendLessOrEqual(block{from: u}, func(b block) bool {
		prev, hasPrev = b, b.to.next() == u
		return false
	})
	if !u.isMax() {
		next, hasNext = f.tree.Get(block{from: u.next()})
	}
	switch {
	case hasPrev && hasNext:
		f.tree.Delete(next)
		f.tree.ReplaceOrInsert(block{from: prev.from, to: next.to})
	case hasPrev:
		f.tree.ReplaceOrInsert(block{from: prev.from, to: u})
	case hasNext:
		f.tree.Delete(next)
		f.tree.ReplaceOrInsert(block{from: u, to: next.to})
	default:
		f.tree.ReplaceOrInsert(block{from: u, to: u})
	}
}

// coalesce merges adjacent blocks, as left by adjacent configured ranges,
// so that a fully free range is always one block. O(n log n).
func (f *freeSet) coalesce() {
	var merged []block
	f.tree.Ascend(func(b block) bool {
		if n := len(merged); n > 0 && merged[n-1].to.next() == b.from {
			merged[n-1].to = b.to
		} else {
			merged = append(merged, b)
		}
		return true
	})
	if len(merged) == f.tree.Len() {
		return
	}
	f.tree.Clear(true)
	for _, b := range merged {
		f.tree.ReplaceOrInsert(b)
	}
}
