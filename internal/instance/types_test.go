package instance

import "testing"

func TestLimitsFor(t *testing.T) {
	tests := []struct {
		typ  string
		want Limits
		ok   bool
	}{
		{"t3.micro", Limits{CPUs: 2, MemoryBytes: 1 << 30}, true},
		{"t3.nano", Limits{CPUs: 2, MemoryBytes: 512 << 20}, true},
		{"t4g.small", Limits{CPUs: 2, MemoryBytes: 2 << 30}, true},
		{"t2.medium", Limits{CPUs: 2, MemoryBytes: 4 << 30}, true},
		{"m6i.xlarge", Limits{CPUs: 4, MemoryBytes: 16 << 30}, true},
		{"c5.large", Limits{CPUs: 2, MemoryBytes: 4 << 30}, true},
		{"r5.large", Limits{CPUs: 2, MemoryBytes: 16 << 30}, true},
		{"x1e.32xlarge", Limits{}, false},
		{"micro", Limits{}, false},
		{"", Limits{}, false},
	}
	for _, tt := range tests {
		got, ok := LimitsFor(tt.typ)
		if got != tt.want || ok != tt.ok {
			t.Errorf("LimitsFor(%q) = %+v, %v; want %+v, %v", tt.typ, got, ok, tt.want, tt.ok)
		}
	}
}
