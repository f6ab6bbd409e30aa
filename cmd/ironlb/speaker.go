package main

import (
	"context"
	"fmt"
	"io"
)

// runSpeaker implements "ironlb speaker". Placeholder until the speaker lands.
func runSpeaker(ctx context.Context, args []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "ironlb speaker: not implemented yet")
	return 1
}
