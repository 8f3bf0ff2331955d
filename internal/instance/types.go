package instance

import "strings"

// typeSize is vCPUs and memory (MiB) of an EC2 instance size.
type typeSize struct {
	vcpus float64
	mib   int64
}

// sizes are the general purpose burstable sizes (t2, t3, t3a, t4g share
// them) and the m5/c5/r5 families' first sizes.
var sizes = map[string]typeSize{
	"t3.nano": {2, 512}, "t3.micro": {2, 1024}, "t3.small": {2, 2048}, "t3.medium": {2, 4096},
	"t3.large": {2, 8192}, "t3.xlarge": {4, 16384}, "t3.2xlarge": {8, 32768},
	"m5.large": {2, 8192}, "m5.xlarge": {4, 16384}, "m5.2xlarge": {8, 32768},
	"c5.large": {2, 4096}, "c5.xlarge": {4, 8192}, "c5.2xlarge": {8, 16384},
	"r5.large": {2, 16384}, "r5.xlarge": {4, 32768},
}

// LimitsFor is the local CPU and memory limits of an EC2 instance type:
// its vCPUs and memory, as documented by AWS. The burstable families
// (t2, t3a, t4g) map to the t3 sizes. ok is false for an unknown type,
// which runs without limits.
func LimitsFor(instanceType string) (Limits, bool) {
	family, size, found := strings.Cut(instanceType, ".")
	if !found {
		return Limits{}, false
	}
	switch family {
	case "t2", "t3a", "t4g":
		family = "t3"
	case "m5a", "m6i", "m6g", "m7i", "m7g":
		family = "m5"
	case "c5a", "c6i", "c6g", "c7i", "c7g":
		family = "c5"
	case "r5a", "r6i", "r6g", "r7i", "r7g":
		family = "r5"
	}
	s, ok := sizes[family+"."+size]
	if !ok {
		return Limits{}, false
	}
	return Limits{CPUs: s.vcpus, MemoryBytes: s.mib << 20}, true
}

// CPUUtilization is EC2's CPUUtilization in percent: the CPU time used
// between two Usage samples over the wall time between them, relative to
// the instance's vCPUs (1 when unknown), capped at 100.
func CPUUtilization(prevCPU, curCPU float64, elapsedSeconds, vcpus float64) float64 {
	if elapsedSeconds <= 0 || curCPU < prevCPU {
		return 0
	}
	if vcpus <= 0 {
		vcpus = 1
	}
	return min(100, 100*(curCPU-prevCPU)/elapsedSeconds/vcpus)
}
