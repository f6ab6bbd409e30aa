package config

import (
	"encoding/json"
)

// dump renders a value readably for failure messages (pointers followed).
func dump(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}
