package ipam

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("ns%d/svc%d", i%100, i)
	}
	return keys
}

// benchFill measures one allocation while filling a pool from empty to n
// Services, starting over with an empty allocator every n allocations.
func benchFill(b *testing.B, p Pool, req Request, n int) {
	keys := benchKeys(n)
	var a *Allocator
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%n == 0 {
			b.StopTimer()
			a = newAlloc(b, p)
			b.StartTimer()
		}
		if _, err := a.Allocate(Service{Key: keys[i%n], Ports: []Port{{"TCP", 80}}}, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFillIPv4Slash16To60k(b *testing.B) {
	benchFill(b, mkPool(b, "p", true, true, "10.0.0.0/16"), Request{}, 60_000)
}

func BenchmarkFillIPv6Slash64To100k(b *testing.B) {
	benchFill(b, mkPool(b, "p", true, false, "fd00::/64"), Request{Families: []Family{IPv6}}, 100_000)
}

// BenchmarkMemoryIPv6Slash64 reports the heap held per Service by an
// allocator with 100,000 Services in a /64. Each iteration is a whole fill:
// run it with -benchtime 1x (or the default time), not with a large count.
func BenchmarkMemoryIPv6Slash64(b *testing.B) {
	keys := benchKeys(100_000)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := newAlloc(b, mkPool(b, "p", true, false, "fd00::/64"))
		for _, k := range keys {
			if _, err := a.Allocate(Service{Key: k, Ports: []Port{{"TCP", 80}}}, Request{Families: []Family{IPv6}}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(keys)), "heapB/service")
		runtime.KeepAlive(a)
	}
}

// prefill fills a /16 completely, then releases a random (1-fill) share
// of it, leaving the free space fragmented into many blocks.
func prefill(b *testing.B, fill float64) (*Allocator, []string) {
	b.Helper()
	const size = 1 << 16
	a := newAlloc(b, mkPool(b, "p", true, false, "10.0.0.0/16"))
	keys := benchKeys(size)
	for _, k := range keys {
		if _, err := a.Allocate(Service{Key: k}, Request{}); err != nil {
			b.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	var held []string
	for _, i := range r.Perm(size) {
		if float64(len(held)) < fill*size {
			held = append(held, keys[i])
			continue
		}
		a.Release(keys[i])
	}
	return a, held
}

// BenchmarkAllocateAtFill measures an Allocate (of the lowest free address)
// followed by the Release of the new Service, at several fill levels of a
// fragmented /16.
func BenchmarkAllocateAtFill(b *testing.B) {
	for _, fill := range []float64{0.01, 0.50, 0.99} {
		b.Run(fmt.Sprintf("%.0f%%", fill*100), func(b *testing.B) {
			a, _ := prefill(b, fill)
			b.Logf("free blocks: %d", a.pools.list[0].fams[0].free.tree.Len())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Allocate(Service{Key: "bench/new"}, Request{}); err != nil {
					b.Fatal(err)
				}
				a.Release("bench/new")
			}
		})
	}
}

// BenchmarkChurn releases a random Service and allocates a new one, at 50%
// of a /16.
func BenchmarkChurn(b *testing.B) {
	a, held := prefill(b, 0.5)
	r := rand.New(rand.NewPCG(3, 3))
	fresh := benchKeys(1 << 16)
	next := 0
	b.ReportAllocs()
	for b.Loop() {
		i := r.IntN(len(held))
		a.Release(held[i])
		k := "churn/" + fresh[next%len(fresh)]
		next++
		if _, err := a.Allocate(Service{Key: k}, Request{}); err != nil {
			b.Fatal(err)
		}
		held[i] = k
	}
}

// BenchmarkSharedKey allocates Services that all carry one sharing key and
// distinct ports, so each finds the lowest shareable address through the
// sharing index.
func BenchmarkSharedKey(b *testing.B) {
	a := newAlloc(b, mkPool(b, "p", true, false, "10.0.0.0/16"))
	keys := benchKeys(1 << 16)
	for i := range 1000 {
		if _, err := a.Allocate(Service{Key: keys[i], SharingKey: "k", Ports: []Port{{"TCP", int32(i)}}}, Request{}); err != nil {
			b.Fatal(err)
		}
	}
	i := 1000
	b.ReportAllocs()
	for b.Loop() {
		s := Service{Key: "shared/" + keys[i%len(keys)], SharingKey: "k", Ports: []Port{{"TCP", int32(i)}}}
		i++
		if _, err := a.Allocate(s, Request{}); err != nil {
			b.Fatal(err)
		}
		a.Release(s.Key)
	}
}
