package awsdeploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"

	"github.com/moat-dev/moat/internal/awscfn"
)

// MaxTemplateBody is CloudFormation's limit for an inline template; larger
// templates go to S3 and are passed by URL.
const MaxTemplateBody = 51200

// Deployer creates, updates and deletes stacks. The zero value is not
// usable: set CloudFormation at least.
type Deployer struct {
	CloudFormation CloudFormation
	// S3 and STS are needed only to upload assets or a large template.
	S3     S3
	STS    Identity
	Region string
	// EC2 and ACM check zones and certificates before a change set (when
	// the Spec names them); SSM resolves images; ELBv2, EC2 and
	// AutoScaling verify a deployed stack and describe its instances.
	EC2         EC2
	ACM         ACM
	SSM         SSM
	ELBv2       ELBv2
	AutoScaling AutoScaling
	// Emulated is set when the calls go to an emulator rather than AWS:
	// Request then makes no request to the load balancer.
	Emulated bool

	// Out receives the change set, the progress view and notes (stderr).
	Out io.Writer
	// TTY redraws the progress view in place; Color colours it; Width and
	// Height are the terminal's size (0: unknown).
	TTY, Color    bool
	Width, Height int
	// Confirm asks before a change set is executed or a stack deleted; nil
	// proceeds without asking (-y). It returns when ctx ends (Ctrl-C at
	// the prompt) with ctx's error, and then nothing is changed.
	Confirm func(ctx context.Context, question string) (bool, error)
	// Poll is the interval between status polls (default 3s).
	Poll time.Duration
	// Now names change sets (default time.Now).
	Now func() time.Time

	resolvedBucket string
}

// Spec is what to deploy.
type Spec struct {
	StackName string
	// Template is the template body, JSON or YAML.
	Template []byte
	// Parameters are template parameter values; assets add theirs.
	Parameters map[string]string
	Assets     []Asset
	// Bucket receives assets and templates over MaxTemplateBody; empty
	// means moat's managed bucket (ManagedBucket), created when needed.
	Bucket string
	// Tags are put on the stack and, by CloudFormation, on its resources.
	Tags map[string]string

	// Zones are the availability zones the subnets go in (us-east-1a),
	// checked against the account's before a change set is created.
	Zones []string
	// Certificates are the HTTPS listeners' certificate parameters,
	// checked in ACM before a change set is created.
	Certificates []CertificateParam
	// Images are resolved from SSM when the stack is created and kept on
	// updates, unless UpdateImage.
	Images      []awscfn.ImageParameter
	UpdateImage bool
	// Estimate is printed before the question (the monthly cost).
	Estimate string
}

// Change is one resource change in a change set.
type Change struct {
	Action      string `json:"action"` // Add, Modify, Remove, Import, Dynamic
	LogicalID   string `json:"logicalId"`
	PhysicalID  string `json:"physicalId,omitempty"`
	Type        string `json:"type"`
	Replacement string `json:"replacement,omitempty"` // True, False, Conditional (Modify only)
}

// Output is a stack output.
type Output struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	Description string `json:"description,omitempty"`
}

// Result is what a deploy or destroy did.
type Result struct {
	StackName string   `json:"stackName"`
	StackID   string   `json:"stackId,omitempty"`
	Action    string   `json:"action"` // CREATE, UPDATE, DELETE
	Status    string   `json:"status,omitempty"`
	NoChanges bool     `json:"noChanges,omitempty"`
	Cancelled bool     `json:"cancelled,omitempty"`
	Changes   []Change `json:"changes,omitempty"`
	Outputs   []Output `json:"outputs,omitempty"`
	Events    []Event  `json:"-"`
}

// ErrStackNotFound is returned when the stack does not exist.
var ErrStackNotFound = errors.New("stack not found")

func (d *Deployer) out() io.Writer {
	if d.Out == nil {
		return io.Discard
	}
	return d.Out
}

func (d *Deployer) poll() time.Duration {
	if d.Poll <= 0 {
		return 3 * time.Second
	}
	return d.Poll
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// describe returns the stack, or nil when it does not exist.
func (d *Deployer) describe(ctx context.Context, nameOrID string) (*types.Stack, error) {
	out, err := d.CloudFormation.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(nameOrID)})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist") {
			return nil, nil
		}
		return nil, credentialsTrouble(fmt.Errorf("describe stack %s: %w", nameOrID, apiError(err)))
	}
	if len(out.Stacks) == 0 {
		return nil, nil
	}
	return &out.Stacks[0], nil
}

// Deploy creates or updates the stack through a change set.
func (d *Deployer) Deploy(ctx context.Context, spec Spec) (*Result, error) {
	name := spec.StackName
	existing, err := d.describe(ctx, name)
	if err != nil {
		return nil, err
	}
	status := ""
	if existing != nil {
		status = string(existing.StackStatus)
	}
	action, err := StackAction(name, status)
	if err != nil {
		return nil, err
	}
	res := &Result{StackName: name, Action: action.String()}

	params := map[string]string{}
	for k, v := range spec.Parameters {
		params[k] = v
	}
	// keep are the parameters that keep the stack's value (UsePreviousValue).
	keep := map[string]bool{}
	var previous map[string]string
	if action == Update {
		previous = parametersOf(existing)
	}
	for _, c := range spec.Certificates {
		if _, given := params[c.Parameter]; !given && c.Default == "" {
			if _, had := previous[c.Parameter]; had {
				keep[c.Parameter] = true
			}
		}
	}
	if err := d.preflight(ctx, spec, params, previous, keep); err != nil {
		return nil, err
	}
	stackRef := name
	if existing != nil {
		stackRef = aws.ToString(existing.StackId)
	}
	if err := d.images(ctx, spec, stackRef, params, keep, previous); err != nil {
		return nil, err
	}
	for _, a := range spec.Assets {
		bundle, err := awscfn.Bundle(a.Dir) // the bytes the template would inline
		if err != nil {
			return nil, err
		}
		bucket, err := d.bucket(ctx, spec.Bucket)
		if err != nil {
			return nil, err
		}
		key := BundleKey(name, a.Name, bundle)
		if err := d.upload(ctx, bucket, key, bundle, "application/gzip"); err != nil {
			return nil, err
		}
		fmt.Fprintf(d.out(), "uploaded %s (%d bytes) to s3://%s/%s\n", a.Dir, len(bundle), bucket, key)
		params[a.ParamBucket], params[a.ParamKey] = bucket, key
	}

	body := spec.Template
	if json.Valid(body) {
		var c bytes.Buffer
		if err := json.Compact(&c, body); err == nil {
			body = c.Bytes()
		}
	}
	in := &cloudformation.CreateChangeSetInput{
		StackName:     aws.String(name),
		ChangeSetName: aws.String(d.changeSetName()),
		ChangeSetType: types.ChangeSetType(action.String()),
		Capabilities:  []types.Capability{types.CapabilityCapabilityIam, types.CapabilityCapabilityNamedIam},
		Description:   aws.String("moat deploy"),
	}
	if len(body) > MaxTemplateBody {
		bucket, err := d.bucket(ctx, spec.Bucket)
		if err != nil {
			return nil, fmt.Errorf("the template is %d bytes, over CloudFormation's %d-byte limit for an inline template, so it goes through S3: %w", len(body), MaxTemplateBody, err)
		}
		sum := sha256.Sum256(body)
		key := fmt.Sprintf("%s/template-%s.json", name, hex.EncodeToString(sum[:])[:32])
		if err := d.upload(ctx, bucket, key, body, "application/json"); err != nil {
			return nil, err
		}
		in.TemplateURL = aws.String(fmt.Sprintf("https://%s.s3.%s.amazonaws.com/%s", bucket, d.Region, key))
	} else {
		in.TemplateBody = aws.String(string(body))
	}
	for _, k := range sortedKeys(params) {
		in.Parameters = append(in.Parameters, types.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(params[k])})
	}
	for _, k := range sortedKeys(boolKeys(keep)) {
		in.Parameters = append(in.Parameters, types.Parameter{ParameterKey: aws.String(k), UsePreviousValue: aws.Bool(true)})
	}
	for _, k := range sortedKeys(spec.Tags) {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(spec.Tags[k])})
	}
	cs, err := d.CloudFormation.CreateChangeSet(ctx, in)
	if err != nil {
		return nil, credentialsTrouble(fmt.Errorf("create change set for stack %s: %w", name, apiError(err)))
	}
	csID, stackID := aws.ToString(cs.Id), aws.ToString(cs.StackId)
	res.StackID = stackID
	// discard deletes the change set, and the empty stack a CREATE change
	// set made, so that nothing is left behind.
	discard := func() {
		ctx := context.WithoutCancel(ctx)
		_, _ = d.CloudFormation.DeleteChangeSet(ctx, &cloudformation.DeleteChangeSetInput{ChangeSetName: aws.String(csID), StackName: aws.String(stackID)})
		if action == Create && status != "REVIEW_IN_PROGRESS" {
			_, _ = d.CloudFormation.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(stackID)})
		}
	}

	changes, csStatus, reason, err := d.waitChangeSet(ctx, csID, stackID)
	if err != nil {
		discard()
		return nil, err
	}
	if csStatus == string(types.ChangeSetStatusFailed) {
		discard()
		if NoChanges(reason) {
			fmt.Fprintf(d.out(), "stack %s is up to date: no changes\n", name)
			res.NoChanges = true
			res.Status = status
			res.Outputs = outputsOf(existing)
			return res, nil
		}
		return nil, fmt.Errorf("change set for stack %s failed: %s", name, reason)
	}
	res.Changes = changes
	WriteChanges(d.out(), name, action, changes)
	writeEstimate(d.out(), spec.Estimate)
	if d.Confirm != nil {
		what := fmt.Sprintf("these %d changes", len(changes))
		switch len(changes) {
		case 0:
			what = "no resource changes"
		case 1:
			what = "this change"
		}
		ok, err := d.Confirm(ctx, fmt.Sprintf("%s stack %s with %s in %s?", verb(action), name, what, d.Region))
		if err != nil || !ok {
			discard()
			res.Cancelled = true
			if err != nil {
				return res, fmt.Errorf("stack %s: nothing was changed (the change set is deleted): %w", name, err)
			}
			return res, nil
		}
	}

	marker, err := d.latestEvent(ctx, stackID)
	if err != nil {
		return nil, err
	}
	if _, err := d.CloudFormation.ExecuteChangeSet(ctx, &cloudformation.ExecuteChangeSetInput{ChangeSetName: aws.String(csID), StackName: aws.String(stackID)}); err != nil {
		discard()
		return nil, credentialsTrouble(fmt.Errorf("execute change set for stack %s: %w", name, apiError(err)))
	}
	var ids []string
	for _, c := range changes {
		ids = append(ids, c.LogicalID)
	}
	final, events, err := d.watch(ctx, name, stackID, marker, ids)
	res.Events = events
	if err != nil {
		return res, err
	}
	res.Status = string(final.StackStatus)
	if !Succeeded(res.Status) {
		return res, &StackFailedError{Stack: name, Operation: strings.ToLower(action.String()), Status: res.Status,
			StatusReason: aws.ToString(final.StackStatusReason), First: FirstFailure(events, name)}
	}
	res.Outputs = outputsOf(final)
	return res, nil
}

func verb(a Action) string {
	if a == Create {
		return "Create"
	}
	return "Update"
}

func (d *Deployer) changeSetName() string {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	return "moat-" + strconv.FormatInt(now().UnixNano(), 36)
}

// waitChangeSet polls until the change set is created or failed and
// returns its changes (every page).
func (d *Deployer) waitChangeSet(ctx context.Context, csID, stackID string) ([]Change, string, string, error) {
	for {
		out, err := d.CloudFormation.DescribeChangeSet(ctx, &cloudformation.DescribeChangeSetInput{ChangeSetName: aws.String(csID), StackName: aws.String(stackID)})
		if err != nil {
			return nil, "", "", credentialsTrouble(fmt.Errorf("describe change set: %w", apiError(err)))
		}
		switch out.Status {
		case types.ChangeSetStatusCreateComplete:
			changes := changesOf(out.Changes)
			for token := out.NextToken; token != nil; {
				page, err := d.CloudFormation.DescribeChangeSet(ctx, &cloudformation.DescribeChangeSetInput{ChangeSetName: aws.String(csID), StackName: aws.String(stackID), NextToken: token})
				if err != nil {
					return nil, "", "", credentialsTrouble(fmt.Errorf("describe change set: %w", apiError(err)))
				}
				changes = append(changes, changesOf(page.Changes)...)
				token = page.NextToken
			}
			return changes, string(out.Status), "", nil
		case types.ChangeSetStatusFailed:
			return nil, string(out.Status), aws.ToString(out.StatusReason), nil
		}
		if err := sleep(ctx, d.poll()); err != nil {
			return nil, "", "", err
		}
	}
}

func changesOf(cs []types.Change) []Change {
	var out []Change
	for _, c := range cs {
		rc := c.ResourceChange
		if rc == nil {
			continue
		}
		out = append(out, Change{
			Action: string(rc.Action), LogicalID: aws.ToString(rc.LogicalResourceId), PhysicalID: aws.ToString(rc.PhysicalResourceId),
			Type: aws.ToString(rc.ResourceType), Replacement: string(rc.Replacement),
		})
	}
	return out
}

// WriteChanges prints a change set as a table.
func WriteChanges(w io.Writer, stack string, a Action, changes []Change) {
	counts := map[string]int{}
	for _, c := range changes {
		counts[c.Action]++
	}
	var parts []string
	for _, act := range []string{"Add", "Modify", "Remove", "Import", "Dynamic"} {
		if counts[act] > 0 {
			parts = append(parts, fmt.Sprintf("%d to %s", counts[act], strings.ToLower(act)))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no resource changes (outputs, parameters or metadata only)")
	}
	fmt.Fprintf(w, "change set for stack %s (%s): %s\n", stack, a, strings.Join(parts, ", "))
	if len(changes) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ACTION\tLOGICAL ID\tTYPE\tREPLACEMENT")
	for _, c := range changes {
		repl := "-"
		if c.Action == "Modify" && c.Replacement != "" {
			repl = c.Replacement
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Action, c.LogicalID, c.Type, repl)
	}
	tw.Flush()
}

// latestEvent returns the id of the stack's newest event, so that watching
// an operation shows only the events after it.
func (d *Deployer) latestEvent(ctx context.Context, stackID string) (string, error) {
	out, err := d.CloudFormation.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String(stackID)})
	if err != nil {
		return "", credentialsTrouble(fmt.Errorf("describe stack events: %w", apiError(err)))
	}
	if len(out.StackEvents) == 0 {
		return "", nil
	}
	return aws.ToString(out.StackEvents[0].EventId), nil
}

// newEvents returns the events after marker, oldest first.
func (d *Deployer) newEvents(ctx context.Context, stackID, marker string) ([]Event, error) {
	var newest []Event // newest first
	var token *string
	for {
		out, err := d.CloudFormation.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String(stackID), NextToken: token})
		if err != nil {
			return nil, credentialsTrouble(fmt.Errorf("describe stack events: %w", apiError(err)))
		}
		for _, e := range out.StackEvents {
			if aws.ToString(e.EventId) == marker {
				return reverse(newest), nil
			}
			newest = append(newest, Event{
				ID: aws.ToString(e.EventId), LogicalID: aws.ToString(e.LogicalResourceId), PhysicalID: aws.ToString(e.PhysicalResourceId),
				Type: aws.ToString(e.ResourceType), Status: string(e.ResourceStatus), Reason: aws.ToString(e.ResourceStatusReason),
				Time: aws.ToTime(e.Timestamp),
			})
		}
		if out.NextToken == nil {
			return reverse(newest), nil
		}
		token = out.NextToken
	}
}

func reverse(es []Event) []Event {
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

// watch streams the operation's events to the progress view until the
// stack reaches a terminal status, and returns the final stack and every
// event of the operation, oldest first.
func (d *Deployer) watch(ctx context.Context, name, stackID, marker string, ids []string) (*types.Stack, []Event, error) {
	view := NewProgress(d.out(), name, d.TTY, d.Color)
	view.Width, view.Height = d.Width, d.Height
	for _, id := range append(ids, "stack "+name) {
		view.NameWidth = max(view.NameWidth, len(id))
	}
	var all []Event
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting for stack %s (the operation goes on in CloudFormation): %w", name, ctx.Err())
		}
		return err
	}
	for {
		evs, err := d.newEvents(ctx, stackID, marker)
		if err != nil {
			return nil, all, stopped(err)
		}
		for _, e := range evs {
			view.Add(e)
			marker = e.ID
		}
		all = append(all, evs...)
		st, err := d.describe(ctx, stackID)
		if err != nil {
			return nil, all, stopped(err)
		}
		if st == nil {
			return nil, all, fmt.Errorf("stack %s disappeared while waiting", name)
		}
		if Terminal(string(st.StackStatus)) {
			// The events that arrived between the two calls.
			evs, err := d.newEvents(ctx, stackID, marker)
			if err != nil {
				return nil, all, stopped(err)
			}
			for _, e := range evs {
				view.Add(e)
			}
			return st, append(all, evs...), nil
		}
		if err := sleep(ctx, d.poll()); err != nil {
			return nil, all, stopped(err)
		}
	}
}

func outputsOf(st *types.Stack) []Output {
	if st == nil {
		return nil
	}
	var out []Output
	for _, o := range st.Outputs {
		out = append(out, Output{Key: aws.ToString(o.OutputKey), Value: aws.ToString(o.OutputValue), Description: aws.ToString(o.Description)})
	}
	return out
}

func boolKeys(m map[string]bool) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v {
			out[k] = ""
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Outputs returns the stack's outputs.
func (d *Deployer) Outputs(ctx context.Context, name string) ([]Output, error) {
	st, err := d.describe(ctx, name)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%w: no stack %s in %s", ErrStackNotFound, name, d.Region)
	}
	return outputsOf(st), nil
}

// Destroy deletes the stack and waits until it is gone.
func (d *Deployer) Destroy(ctx context.Context, name string) (*Result, error) {
	st, err := d.describe(ctx, name)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%w: no stack %s in %s", ErrStackNotFound, name, d.Region)
	}
	stackID := aws.ToString(st.StackId)
	res := &Result{StackName: name, StackID: stackID, Action: "DELETE"}
	if s := string(st.StackStatus); strings.HasSuffix(s, "_IN_PROGRESS") && s != "REVIEW_IN_PROGRESS" && s != "DELETE_IN_PROGRESS" {
		return nil, &StackStateError{name, s, "another operation is running; wait for it to finish, then destroy again"}
	}
	if d.Confirm != nil {
		ok, err := d.Confirm(ctx, fmt.Sprintf("Delete stack %s (%s) and every resource in it, in %s?", name, st.StackStatus, d.Region))
		if err != nil || !ok {
			res.Cancelled = true
			if err != nil {
				return res, fmt.Errorf("stack %s: nothing was deleted: %w", name, err)
			}
			return res, nil
		}
	}
	marker, err := d.latestEvent(ctx, stackID)
	if err != nil {
		return nil, err
	}
	if st.StackStatus != types.StackStatusDeleteInProgress {
		if _, err := d.CloudFormation.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(stackID)}); err != nil {
			return nil, credentialsTrouble(fmt.Errorf("delete stack %s: %w", name, apiError(err)))
		}
	}
	final, events, err := d.watch(ctx, name, stackID, marker, nil)
	res.Events = events
	if err != nil {
		return res, err
	}
	res.Status = string(final.StackStatus)
	if res.Status != "DELETE_COMPLETE" {
		return res, &StackFailedError{Stack: name, Operation: "delete", Status: res.Status,
			StatusReason: aws.ToString(final.StackStatusReason), First: FirstFailure(events, name)}
	}
	return res, nil
}

// writeEstimate prints the cost estimate, if any, before the question.
func writeEstimate(w io.Writer, estimate string) {
	if estimate != "" {
		fmt.Fprintln(w, estimate)
	}
}
