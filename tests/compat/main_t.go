package compat

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// mainT is a testing.TB for TestMain, where no *testing.T exists: failures print and exit.
type mainT struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (m *mainT) Helper() {}
func (m *mainT) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
func (m *mainT) Fatalf(format string, args ...any) {
	m.mu.Lock()
	m.failed = true
	m.mu.Unlock()
	fmt.Fprintf(os.Stderr, "FATAL: "+format+"\n", args...)
	m.cleanup()
	os.Exit(1)
}
func (m *mainT) Fatal(args ...any) { m.Fatalf("%s", fmt.Sprint(args...)) }
func (m *mainT) Failed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}
func (m *mainT) Cleanup(f func()) {
	m.mu.Lock()
	m.cleanups = append(m.cleanups, f)
	m.mu.Unlock()
}
func (m *mainT) cleanup() {
	m.mu.Lock()
	fs := m.cleanups
	m.cleanups = nil
	m.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
