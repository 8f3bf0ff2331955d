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

func TestCPUUtilization(t *testing.T) {
	tests := []struct {
		prev, cur, secs, vcpus, want float64
	}{
		{0, 1, 1, 1, 100},
		{0, 1, 1, 2, 50},
		{2, 2.5, 5, 2, 5},
		{0, 10, 1, 1, 100}, // capped
		{5, 1, 1, 1, 0},    // restarted counter
		{0, 1, 0, 1, 0},    // no time
		{0, 0.5, 1, 0, 50}, // unknown vCPUs
	}
	for _, tt := range tests {
		if got := CPUUtilization(tt.prev, tt.cur, tt.secs, tt.vcpus); got != tt.want {
			t.Errorf("CPUUtilization(%v, %v, %v, %v) = %v, want %v", tt.prev, tt.cur, tt.secs, tt.vcpus, got, tt.want)
		}
	}
}
