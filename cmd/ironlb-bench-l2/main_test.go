package main

import (
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name              string
		in                []time.Duration
		p50, p99, maximum time.Duration
	}{
		{"empty", nil, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"unsorted four", ms(40, 10, 30, 20), 20 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond},
		{"hundred", func() []time.Duration {
			v := make([]int, 100)
			for i := range v {
				v[i] = 100 - i
			}
			return ms(v...)
		}(), 50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p50, p99, mx := percentiles(tc.in)
			if p50 != tc.p50 || p99 != tc.p99 || mx != tc.maximum {
				t.Fatalf("percentiles = %v/%v/%v, want %v/%v/%v", p50, p99, mx, tc.p50, tc.p99, tc.maximum)
			}
		})
	}
}
