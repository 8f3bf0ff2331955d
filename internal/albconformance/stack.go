package albconformance

import (
	"bytes"
	"strings"
	"text/template"
	"time"
)

// The configuration the checks expect, in the stack file's terms
// (StackFile): two instances of Backend in target groups echo, sticky
// (lb_cookie), appsticky (app_cookie SESSION) and slowstart (30 s), an
// empty target group, and two listeners (HTTP 80, HTTPS 443) with the
// same rules.
const (
	// IdleTimeout is the load balancer's idle timeout.
	IdleTimeout = 8 * time.Second
	// HealthInterval, HealthyThreshold and UnhealthyThreshold are the
	// target groups' health check settings (AWS's minimums).
	HealthInterval     = 5 * time.Second
	HealthyThreshold   = 2
	UnhealthyThreshold = 2
	// DeregistrationDelay is every target group's.
	DeregistrationDelay = 10 * time.Second
	// SlowStart is target group slowstart's slow start duration (AWS's
	// minimum).
	SlowStart = 30 * time.Second
	// StickyDuration is target group sticky's lb_cookie duration.
	StickyDuration = time.Hour
	// AppCookie is target group appsticky's application cookie.
	AppCookie = "SESSION"
	// FixedStatus, FixedType and FixedBody are the fixed response on /fixed.
	FixedStatus = 403
	FixedType   = "text/plain"
	FixedBody   = "denied by a listener rule"
)

// StackOptions fill in StackFile.
type StackOptions struct {
	Name      string // stack name
	HTTP      string // loopback address the HTTP listener is published on
	HTTPS     string // and the HTTPS listener
	Metrics   string // loopback address of the stack's metrics endpoint
	Console   string // and of its console
	Files     string // the launch template's files directory, if any
	Command   string // the backend's command; it listens on $MOAT_ALBCONFORMANCE_BACKEND
	BackendOn string // the value of that variable, e.g. ":8000"
}

// StackFile is the stack file of the configuration the checks expect.
func StackFile(o StackOptions) string {
	var b bytes.Buffer
	if err := stackTmpl.Execute(&b, struct {
		StackOptions
		Env                                                     string
		Idle, Interval, Healthy, Unhealthy, Dereg, Slow, Sticky int
		AppCookie, FixedType, FixedBody                         string
		FixedStatus                                             int
	}{o, BackendEnv, int(IdleTimeout / time.Second), int(HealthInterval / time.Second), HealthyThreshold, UnhealthyThreshold,
		int(DeregistrationDelay / time.Second), int(SlowStart / time.Second), int(StickyDuration / time.Second),
		AppCookie, FixedType, FixedBody, FixedStatus}); err != nil {
		panic(err) // the template is a constant
	}
	return b.String()
}

var stackTmpl = template.Must(template.New("stack").Funcs(template.FuncMap{
	"list":  func(s ...string) []string { return s },
	"split": strings.Fields,
}).Parse(`# The load balancer configuration the ALB conformance checks expect.
name: {{.Name}}
vpc:
  cidr: 10.0.0.0/16
  zones: [a, b]
securityGroups:
  - name: lb
    description: clients to the load balancer
    ingress:
      - {protocol: tcp, port: 80, cidr: 0.0.0.0/0}
      - {protocol: tcp, port: 443, cidr: 0.0.0.0/0}
  - name: app
    description: load balancer to the backends
    ingress:
      - {protocol: tcp, port: 8000, group: lb}
launchTemplates:
  - name: backend
{{- if .Files}}
    files: {{.Files}}
{{- end}}
    command: {{.Command}}
    port: 8000
    environment:
      {{.Env}}: "{{.BackendOn}}"
    securityGroups: [app]
targetGroups:
{{- range $name := (list "echo" "sticky" "appsticky" "slowstart" "empty")}}
  - name: {{$name}}
    port: 8000
    healthCheck: {path: /health, intervalSeconds: {{$.Interval}}, timeoutSeconds: 2, healthyThreshold: {{$.Healthy}}, unhealthyThreshold: {{$.Unhealthy}}}
    deregistrationDelay: {{$.Dereg}}
{{- if eq $name "sticky"}}
    stickiness: {enabled: true, type: lb_cookie, durationSeconds: {{$.Sticky}}}
{{- else if eq $name "appsticky"}}
    stickiness: {enabled: true, type: app_cookie, cookieName: {{$.AppCookie}}}
{{- else if eq $name "slowstart"}}
    slowStart: {{$.Slow}}
{{- end}}
{{- end}}
autoScalingGroups:
  - name: backend
    launchTemplate: backend
    subnets: [private-a, private-b]
    minSize: 2
    maxSize: 2
    healthCheckType: EC2
    targetGroups: [echo, sticky, appsticky, slowstart]
loadBalancers:
  - name: alb
    subnets: [public-a, public-b]
    securityGroups: [lb]
    idleTimeout: {{.Idle}}
    listeners:
{{- range $l := (list "80 HTTP" "443 HTTPS")}}
      - port: {{index (split $l) 0}}
        protocol: {{index (split $l) 1}}
        defaultAction:
          forward: {targetGroup: echo}
        rules:
          - {priority: 1, conditions: {pathPattern: [/sticky/*]}, action: {forward: {targetGroup: sticky}}}
          - {priority: 2, conditions: {pathPattern: [/appsticky/*]}, action: {forward: {targetGroup: appsticky}}}
          - {priority: 3, conditions: {pathPattern: [/slowstart/*]}, action: {forward: {targetGroup: slowstart}}}
          - {priority: 4, conditions: {pathPattern: [/empty/*]}, action: {forward: {targetGroup: empty}}}
          - priority: 5
            conditions: {pathPattern: [/fixed]}
            action: {fixedResponse: {statusCode: {{$.FixedStatus}}, contentType: {{$.FixedType}}, messageBody: "{{$.FixedBody}}"}}
          - priority: 6
            conditions: {pathPattern: [/moved/*]}
            action: {redirect: {path: "/new/#{path}", query: "from=#{host}&#{query}", statusCode: HTTP_301}}
          - priority: 7
            conditions: {pathPattern: [/secure/*]}
            action: {redirect: {protocol: HTTPS, port: "443", statusCode: HTTP_302}}
{{- end}}
local:
  publish:
    - {loadBalancer: alb, listener: 80, address: {{.HTTP}}}
    - {loadBalancer: alb, listener: 443, address: {{.HTTPS}}}
{{- if .Metrics}}
  metrics: {{.Metrics}}
{{- end}}
{{- if .Console}}
  console: {{.Console}}
{{- end}}
`))
