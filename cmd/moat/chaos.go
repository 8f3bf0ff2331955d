//go:build linux && !portable

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/daemon"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/fis"
	"github.com/moat-dev/moat/internal/plan"
)

func init() { register(newChaosCommand) }

func newChaosCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "chaos",
		Short: "Run AWS FIS experiments against the running stack",
		Long: `Run AWS Fault Injection Service experiment templates, unchanged, against the
stack running on this machine: its instances, subnets and auto scaling
groups are the targets, the faults are real (frozen processes, nftables,
netem), and every fault is undone when the experiment ends. See
docs/chaos.md.`,
	}
	c.AddCommand(newChaosRunCommand(), newChaosScenarioCommand())
	return c
}

// chaosFlags are the flags of chaos run and chaos scenario.
type chaosFlags struct {
	file, stack, output string
	dryRun              bool
	timeScale           float64
	alarms              []string
	expect              []string
	seed                uint64
	recoveryTimeout     time.Duration
}

func (f *chaosFlags) register(c *cobra.Command) {
	stackFlags(c, &f.file, &f.stack)
	outputFlag(c, &f.output)
	fl := c.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "resolve the targets and print them and the schedule; inject nothing")
	fl.Float64Var(&f.timeScale, "time-scale", 1, "divide every duration by this (60 runs a 30-minute action in 30 seconds)")
	fl.StringArrayVar(&f.alarms, "alarm", nil, "define a stop condition's alarm: NAME=EXPR, e.g. 'web-5xx=5xx-ratio(web) > 0.05 for 30s' (docs/chaos.md)")
	fl.StringArrayVar(&f.expect, "expect", nil, "a hypothesis the report checks, e.g. 'failed-requests==0', 'recovery<60s' (exit 1 when one fails)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the random choice of COUNT(n) and PERCENT(n) targets (default: random)")
	fl.DurationVar(&f.recoveryTimeout, "recovery-timeout", 5*time.Minute, "how long to watch for every group to be back at its desired healthy capacity after the experiment")
}

func newChaosRunCommand() *cobra.Command {
	var f chaosFlags
	c := &cobra.Command{
		Use:   "run TEMPLATE.json",
		Short: "Run an AWS FIS experiment template against the running stack",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			t, err := fis.LoadFile(args[0])
			if err != nil {
				return templateErr(err)
			}
			return runExperiment(c, &f, t)
		},
	}
	f.register(c)
	return c
}

func newChaosScenarioCommand() *cobra.Command {
	var f chaosFlags
	var zone string
	var print bool
	c := &cobra.Command{
		Use:       "scenario NAME",
		Short:     "Run a built-in scenario (az-power-interruption) against the running stack",
		ValidArgs: fis.Scenarios,
		Args:      cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(fis.Scenarios, args[0]) {
				return withCode(exitUsage, fmt.Errorf("no scenario %q: moat has %s", args[0], strings.Join(fis.Scenarios, ", ")))
			}
			if zone == "" {
				return withCode(exitUsage, errors.New("say which zone loses power: --zone a"))
			}
			p, err := chaosPlan(f.stack, f.file)
			if err != nil {
				return err
			}
			z, err := fis.ScenarioZone(fis.BuildInventory(p, nil), zone)
			if err != nil {
				return withCode(exitUsage, err)
			}
			src, err := fis.Scenario(args[0], p.Stack, z)
			if err != nil {
				return withCode(exitUsage, err)
			}
			if print {
				_, err := c.OutOrStdout().Write(append(src, '\n'))
				return err
			}
			t, err := fis.Parse(args[0]+".json", src)
			if err != nil {
				return templateErr(err)
			}
			return runExperiment(c, &f, t)
		},
	}
	f.register(c)
	c.Flags().StringVar(&zone, "zone", "", "the zone that loses power (a zone of the stack file: a, or us-east-1a)")
	c.Flags().BoolVar(&print, "print", false, "print the scenario's experiment template (for aws fis create-experiment-template) and exit")
	return c
}

// templateErr gives template problems the exit code of an invalid file.
func templateErr(err error) error {
	var ps fis.Problems
	if errors.As(err, &ps) {
		return withCode(exitInvalid, ps)
	}
	return withCode(exitInvalid, err)
}

// chaosPlan is the running stack's plan (as moat up wrote it), else the
// stack file's.
func chaosPlan(stackFlag, fileFlag string) (*plan.Plan, error) {
	name, err := stackName(stackFlag, fileFlag)
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(daemon.StackDir(name).Path("plan.json")); err == nil {
		var p plan.Plan
		if err := json.Unmarshal(b, &p); err == nil {
			return &p, nil
		}
	}
	return loadPlan(fileFlag, io.Discard)
}

// dryRun is what --dry-run prints with -o json.
type dryRun struct {
	Template   string         `json:"template"`
	Resolution fis.Resolution `json:"resolution"`
	Steps      []fis.Step     `json:"steps"`
	Alarms     []fis.Alarm    `json:"stopConditions"`
	TimeScale  float64        `json:"timeScale"`
}

func runExperiment(c *cobra.Command, f *chaosFlags, t *fis.File) error {
	problems := fis.Validate(t)
	for _, w := range problems.Warnings() {
		fmt.Fprintln(c.ErrOrStderr(), w.String())
	}
	if len(problems.Errors()) > 0 {
		return withCode(exitInvalid, problems.Errors())
	}
	for _, h := range f.expect {
		if err := fis.CheckHypothesis(h); err != nil {
			return withCode(exitUsage, err)
		}
	}
	if f.timeScale <= 0 {
		return withCode(exitUsage, fmt.Errorf("--time-scale %v: must be more than 0", f.timeScale))
	}
	alarms, err := stopAlarms(t, f.alarms)
	if err != nil {
		return withCode(exitUsage, err)
	}
	p, err := chaosPlan(f.stack, f.file)
	if err != nil {
		return err
	}
	if err := alarmSubjects(p, alarms); err != nil {
		return withCode(exitUsage, err)
	}
	cl, _, err := connect(c.Context(), p.Stack, "")
	if err != nil {
		return err
	}
	list, err := cl.Instances(c.Context(), false)
	if err != nil {
		return apiErr(err)
	}
	seed := f.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	res, err := fis.Resolve(t, fis.BuildInventory(p, list), rand.New(rand.NewPCG(seed, seed)))
	if err != nil {
		return withCode(exitFailure, err)
	}
	steps, err := fis.Schedule(t, res, f.timeScale)
	if err != nil {
		return withCode(exitUsage, err)
	}
	if f.dryRun {
		if f.output == "json" {
			return writeJSON(c.OutOrStdout(), dryRun{Template: t.Path, Resolution: res, Steps: steps, Alarms: alarms, TimeScale: f.timeScale})
		}
		printDryRun(c.OutOrStdout(), t, res, steps, alarms)
		fmt.Fprintln(c.ErrOrStderr(), "dry run: nothing injected")
		return nil
	}

	ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	id := fis.NewID()
	stderr := c.ErrOrStderr()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s %s: %s\n", time.Now().Format("15:04:05"), id, fmt.Sprintf(format, args...))
	}
	logf("experiment of %s: %d actions, planned %s", t.Path, len(steps), fis.Length(steps))
	st := &stackWatch{cl: cl, start: time.Now()}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { st.watch(watchCtx) })
	result := fis.Run(ctx, id, steps, fis.RunOptions{Control: faultControl{cl}, Alarms: alarms, Observer: &alarmObserver{cl: cl}, Log: logf})
	logf("experiment %s%s", result.State, reasonText(result.Reason))
	// Watch the recovery: until every group is back to its desired
	// capacity of healthy targets, or the timeout (or Ctrl-C again).
	if result.State != fis.StateCancelled {
		deadline := time.Now().Add(f.recoveryTimeout)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if st.recovered() {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	stopWatch()
	wg.Wait()
	last, cancelLast := context.WithTimeout(context.Background(), 5*time.Second)
	st.metrics(last) // the seconds since the watch's last reading
	cancelLast()
	var log []events.Event
	evCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = cl.Events(evCtx, false, func(e events.Event) { log = append(log, e) })
	lbs, merr := st.loadBalancers()
	report := fis.BuildReport(result, log, lbs, merr, st.capacity(), f.expect)
	if f.output == "json" {
		if err := writeJSON(c.OutOrStdout(), report); err != nil {
			return err
		}
	} else {
		fmt.Fprint(c.OutOrStdout(), report.Text())
	}
	if !report.Pass {
		return withCode(exitFailure, fmt.Errorf("experiment %s: %s", id, failText(report)))
	}
	return nil
}

func reasonText(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

func failText(r fis.Report) string {
	if r.Experiment.State != fis.StateCompleted {
		return r.Experiment.State + reasonText(r.Experiment.Reason)
	}
	var failed []string
	for _, h := range r.Hypotheses {
		if !h.Holds {
			failed = append(failed, fmt.Sprintf("%s (%s)", h.Expr, h.Value))
		}
	}
	return "hypotheses failed: " + strings.Join(failed, ", ")
}

// stopAlarms are the alarms of the template's stop conditions: the alarm
// name is the expression, unless --alarm NAME=EXPR defines it.
func stopAlarms(t *fis.File, defs []string) ([]fis.Alarm, error) {
	named := map[string]string{}
	for _, d := range defs {
		name, expr, ok := strings.Cut(d, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--alarm %q: write NAME=EXPR, e.g. 'web-5xx=5xx-ratio(web) > 0.05 for 30s'", d)
		}
		if _, err := fis.ParseAlarm(expr); err != nil {
			return nil, fmt.Errorf("--alarm %s: %w", name, err)
		}
		named[name] = expr
	}
	var out []fis.Alarm
	for i, s := range t.Template.StopConditions {
		if s.Source != "aws:cloudwatch:alarm" {
			continue
		}
		name := s.Value[strings.Index(s.Value, ":alarm:")+len(":alarm:"):]
		expr, ok := named[name]
		if !ok {
			expr = name
		}
		a, err := fis.ParseAlarm(expr)
		if err != nil {
			return nil, fmt.Errorf("stopConditions[%d]: alarm %q: %w; define it with --alarm '%s=EXPR'", i, name, err, name)
		}
		out = append(out, a)
	}
	return out, nil
}

// alarmSubjects checks that each alarm names a target group or load
// balancer of the stack.
func alarmSubjects(p *plan.Plan, alarms []fis.Alarm) error {
	var tgs, lbs []string
	for _, t := range p.TargetGroups {
		tgs = append(tgs, t.Name)
	}
	for _, l := range p.LoadBalancers {
		lbs = append(lbs, l.Name)
	}
	for _, a := range alarms {
		what, names := "target group", tgs
		if a.LoadBalancerMetric() {
			what, names = "load balancer", lbs
		}
		if !slices.Contains(names, a.Subject) {
			return fmt.Errorf("stop condition %q: the stack has no %s %q (it has %s)", a.Expr, what, a.Subject, listOrDash(names))
		}
	}
	return nil
}

func printDryRun(w io.Writer, t *fis.File, res fis.Resolution, steps []fis.Step, alarms []fis.Alarm) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tTYPE\tSELECTION\tIDENTIFIED\tSELECTED")
	for _, name := range t.TargetNames() {
		tg := t.Template.Targets[name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", name, tg.ResourceType, tg.SelectionMode, len(res.Identified[name]), listOrDash(res.Selected[name]))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tACTION\tACTION ID\tFAULT\tTARGETS\tDURATION\tAFTER")
	for _, s := range steps {
		d := s.Duration.String()
		if s.UntilEnd {
			d = "until the end"
		}
		kind := s.Kind
		if s.Skip != "" {
			kind = "skipped"
		}
		fmt.Fprintf(tw, "+%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Start, s.Name, s.ActionID, kind, listOrDash(s.Targets), d, listOrDash(s.StartAfter))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nplanned length: %s\n", fis.Length(steps))
	if len(alarms) == 0 {
		fmt.Fprintln(w, "stop conditions: none")
	}
	for _, a := range alarms {
		fmt.Fprintf(w, "stop condition: %s\n", a.Expr)
	}
}

func listOrDash(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

// faultControl is fis.Control over the stack's control API.
type faultControl struct{ cl *client.Client }

var _ fis.Control = faultControl{}

func (f faultControl) StartFault(ctx context.Context, r fis.FaultRequest) (string, error) {
	ft, err := f.cl.StartFault(ctx, api.FaultRequest{Kind: r.Kind, Targets: r.Targets, Params: r.Params,
		DurationSeconds: r.Duration.Seconds(), Experiment: r.Experiment})
	if err != nil {
		return "", err
	}
	if ft.State == api.FaultFailed {
		return ft.ID, fmt.Errorf("fault %s failed: %s", ft.ID, ft.Error)
	}
	return ft.ID, nil
}

func (f faultControl) StopFault(ctx context.Context, id string) error {
	ft, err := f.cl.StopFault(ctx, id)
	if err != nil {
		return err
	}
	if ft.State == api.FaultFailed && ft.Error != "" {
		return fmt.Errorf("fault %s: %s", id, ft.Error)
	}
	return nil
}

func (f faultControl) Terminate(ctx context.Context, id string) error {
	return f.cl.Terminate(ctx, id, false)
}

// alarmObserver reads alarm metrics from the stack: target health from
// GET /v1/targets, the load balancers' 5xx from GET /v1/metrics (the
// seconds since its last reading).
type alarmObserver struct {
	cl   *client.Client
	mu   sync.Mutex
	last map[string]time.Time // alarm -> time of the last sample read
}

func (o *alarmObserver) Observe(ctx context.Context, a fis.Alarm) (fis.Observation, error) {
	now := time.Now()
	switch a.Metric {
	case fis.MetricHealthyHosts, fis.MetricUnhealthyHosts:
		ts, err := o.cl.Targets(ctx)
		if err != nil {
			return fis.Observation{}, err
		}
		n := 0
		for _, t := range ts {
			if t.TargetGroup == a.Subject && (t.State == "healthy") == (a.Metric == fis.MetricHealthyHosts) {
				n++
			}
		}
		return fis.Observation{Time: now, Value: float64(n)}, nil
	}
	o.mu.Lock()
	since, ok := o.last[a.Expr]
	o.mu.Unlock()
	if !ok {
		since = now.Add(-2 * time.Second)
	}
	m, err := o.cl.Metrics(ctx, since)
	if err != nil {
		return fis.Observation{}, err
	}
	sums, since := fis.SumLoadBalancers(m.Samples, since)
	lb := sums[a.Subject]
	obs := fis.Observation{Time: now, Errors: float64(lb.Failed), Requests: float64(lb.Requests)}
	o.mu.Lock()
	if o.last == nil {
		o.last = map[string]time.Time{}
	}
	o.last[a.Expr] = since
	o.mu.Unlock()
	return obs, nil
}

// stackWatch samples the stack while an experiment runs and recovers:
// every group's healthy capacity.
type stackWatch struct {
	cl    *client.Client
	start time.Time
	mu    sync.Mutex
	cap   []fis.CapacitySample
	// lbs sums each load balancer's seconds since start; lastSample is
	// the time of the last second added, metricsErr why none could be.
	lbs        map[string]*fis.LBReport
	lastSample time.Time
	metricsErr error
}

func (s *stackWatch) watch(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if cs, err := s.sample(ctx); err == nil {
			s.mu.Lock()
			s.cap = append(s.cap, cs)
			s.mu.Unlock()
		}
		s.metrics(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample counts each group's healthy capacity: its instances healthy in
// its target groups (as the load balancer sees them), or, for a group in
// no target group, those the group counts healthy.
func (s *stackWatch) sample(ctx context.Context) (fis.CapacitySample, error) {
	st, err := s.cl.Status(ctx)
	if err != nil {
		return fis.CapacitySample{}, err
	}
	ins, err := s.cl.Instances(ctx, false)
	if err != nil {
		return fis.CapacitySample{}, err
	}
	ts, err := s.cl.Targets(ctx)
	if err != nil {
		return fis.CapacitySample{}, err
	}
	group := map[string]string{}
	for _, i := range ins {
		group[i.ID] = i.Group
	}
	registered := map[string]bool{} // groups with targets
	healthy := map[string]map[string]bool{}
	for _, t := range ts {
		g := group[t.ID]
		if g == "" {
			continue
		}
		registered[g] = true
		if t.State == "healthy" {
			if healthy[g] == nil {
				healthy[g] = map[string]bool{}
			}
			healthy[g][t.ID] = true
		}
	}
	cs := fis.CapacitySample{Time: time.Now(), Groups: map[string][2]int{}}
	for _, g := range st.Groups {
		h := g.Healthy
		if registered[g.Name] || len(healthy[g.Name]) > 0 {
			h = len(healthy[g.Name])
		}
		cs.Groups[g.Name] = [2]int{h, g.Desired}
	}
	return cs, nil
}

func (s *stackWatch) capacity() []fis.CapacitySample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cap)
}

// recovered says whether capacity was lost and is back (or never lost).
func (s *stackWatch) recovered() bool {
	caps := s.capacity()
	if len(caps) == 0 {
		return false
	}
	_, _, ok := fis.Recovery(caps[0].Time, caps)
	return ok
}

// metrics adds the load balancers' seconds since the last reading.
func (s *stackWatch) metrics(ctx context.Context) {
	s.mu.Lock()
	since := s.lastSample
	if since.IsZero() {
		since = s.start // seconds that ended before the experiment are not its
	}
	s.mu.Unlock()
	m, err := s.cl.Metrics(ctx, since)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			s.metricsErr = err
		}
		return
	}
	s.metricsErr = nil
	if s.lbs == nil {
		s.lbs = map[string]*fis.LBReport{}
	}
	sums, last := fis.SumLoadBalancers(m.Samples, since)
	for name, sum := range sums {
		if s.lbs[name] == nil {
			s.lbs[name] = &fis.LBReport{Name: name}
		}
		s.lbs[name].Add(sum)
	}
	s.lastSample = last
}

func (s *stackWatch) loadBalancers() ([]fis.LBReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.metricsErr != nil {
		return nil, fmt.Errorf("read the load balancers' metrics: %w", s.metricsErr)
	}
	var out []fis.LBReport
	for _, name := range slices.Sorted(maps.Keys(s.lbs)) {
		out = append(out, *s.lbs[name])
	}
	return out, nil
}
