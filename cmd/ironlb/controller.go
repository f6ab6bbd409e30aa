package main

import (
	"context"
	"fmt"
	"io"
)

// runController implements "ironlb controller".
func runController(ctx context.Context, args []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "ironlb controller: not implemented yet")
	return 1
}
