package membership

// Left reports whether the named member's last departure was a planned Leave rather than a
// failure. It is false for members that are alive or were never seen. O(1).
func (m *Members) Left(name string) bool {
	kind, ok := m.departures.Load(name)
	return ok && kind.(eventKind) == eventLeft
}
