package api

import "time"

// Metrics is what GetMetrics returns: per-second samples, oldest first.
// Metric fields are named as CloudWatch's metrics (AWS/ApplicationELB,
// AWS/EC2, AWS/NATGateway) and their JSON keys are those names; counts
// are for that one second.
type Metrics struct {
	Samples []MetricsSample `json:"samples"`
}

// MetricsSample is one second of the stack: what flowed in the second
// that ended at Time.
type MetricsSample struct {
	Time          time.Time         `json:"time"`
	LoadBalancers []LBMetrics       `json:"loadBalancers"`
	Instances     []InstanceMetrics `json:"instances"`
	Bastion       BastionMetrics    `json:"bastion"`
	NAT           []NATMetrics      `json:"nat"`
}

// LBMetrics is one load balancer's second, as AWS/ApplicationELB names it.
type LBMetrics struct {
	Name string `json:"name"`
	// RequestCount counts the requests answered, by a target or by the
	// load balancer, except those refused as malformed (400, 414, 431,
	// 463), which ALB leaves out too.
	RequestCount              uint64 `json:"RequestCount"`
	HTTPCode_Target_2XX_Count uint64 `json:"HTTPCode_Target_2XX_Count"`
	HTTPCode_Target_3XX_Count uint64 `json:"HTTPCode_Target_3XX_Count"`
	HTTPCode_Target_4XX_Count uint64 `json:"HTTPCode_Target_4XX_Count"`
	HTTPCode_Target_5XX_Count uint64 `json:"HTTPCode_Target_5XX_Count"`
	// HTTPCode_ELB_3XX_Count counts redirect actions.
	HTTPCode_ELB_3XX_Count uint64 `json:"HTTPCode_ELB_3XX_Count"`
	HTTPCode_ELB_4XX_Count uint64 `json:"HTTPCode_ELB_4XX_Count"`
	HTTPCode_ELB_5XX_Count uint64 `json:"HTTPCode_ELB_5XX_Count"`
	// TargetResponseTimeP50 and P99 are in seconds: from the request
	// head read to the target's response head, over the responses the
	// targets sent in the second (0 when none).
	TargetResponseTimeP50 float64 `json:"TargetResponseTimeP50"`
	TargetResponseTimeP99 float64 `json:"TargetResponseTimeP99"`
	// ActiveConnectionCount is the client connections open at the end of
	// the second.
	ActiveConnectionCount int64                `json:"ActiveConnectionCount"`
	TargetGroups          []TargetGroupMetrics `json:"targetGroups"`
	Targets               []TargetMetrics      `json:"targets"`
}

// TargetGroupMetrics is a target group's health at the end of the second.
type TargetGroupMetrics struct {
	Name               string `json:"name"`
	HealthyHostCount   int    `json:"HealthyHostCount"`
	UnHealthyHostCount int    `json:"UnHealthyHostCount"`
}

// TargetMetrics is one target's second.
type TargetMetrics struct {
	TargetGroup string `json:"targetGroup"`
	// ID is the instance id (the address for a target that is no instance).
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	State string `json:"state"`
	// RequestCount counts the responses to requests sent to the target,
	// whoever made them.
	RequestCount              uint64 `json:"RequestCount"`
	HTTPCode_Target_5XX_Count uint64 `json:"HTTPCode_Target_5XX_Count"`
	// HTTPCode_ELB_5XX_Count counts the load balancer's 502 and 504 for
	// the target (connection failed, bad response, timeout).
	HTTPCode_ELB_5XX_Count uint64 `json:"HTTPCode_ELB_5XX_Count"`
	// Errors5XX is both 5XX counts.
	Errors5XX uint64 `json:"Errors5XX"`
	// P50 and P99 are the target's TargetResponseTime percentiles, in
	// seconds.
	P50 float64 `json:"P50"`
	P99 float64 `json:"P99"`
}

// InstanceMetrics is one running instance's second, as AWS/EC2 names it.
type InstanceMetrics struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	// CPUUtilization is the percent of the instance type's vCPUs used.
	CPUUtilization float64 `json:"CPUUtilization"`
	// MemoryUsedBytes and MemoryLimitBytes are the instance's memory
	// cgroup's usage and limit (without a memory cgroup: the resident
	// memory of its processes, and no limit, 0).
	MemoryUsedBytes  int64 `json:"MemoryUsedBytes"`
	MemoryLimitBytes int64 `json:"MemoryLimitBytes"`
}

// BastionMetrics is the bastion at the end of the second.
type BastionMetrics struct {
	// ActiveSessions are the authenticated SSH connections open.
	ActiveSessions int `json:"ActiveSessions"`
	// Forwards are the open forwards (ssh -J, -W, -L) by destination.
	Forwards []BastionForward `json:"forwards,omitempty"`
}

// BastionForward is the forwards open to one destination.
type BastionForward struct {
	// Destination is ip:port; ID is the instance there, if one is.
	Destination string `json:"destination"`
	ID          string `json:"id,omitempty"`
	Count       int    `json:"count"`
}

// NATMetrics is one NAT gateway's second, as AWS/NATGateway names it.
type NATMetrics struct {
	Name                    string `json:"name"`
	BytesOutToDestination   uint64 `json:"BytesOutToDestination"`
	PacketsOutToDestination uint64 `json:"PacketsOutToDestination"`
}
