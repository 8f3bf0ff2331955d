package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/moat-dev/moat/internal/awscfn"
	"github.com/moat-dev/moat/internal/awscost"
	"github.com/moat-dev/moat/internal/awsdeploy"
	"github.com/moat-dev/moat/internal/plan"
)

func init() {
	register(newDeployCommand)
	register(newDestroyCommand)
	register(newOutputsCommand)
}

// awsFlags are the flags every AWS command shares.
type awsFlags struct {
	file, stackName, region, profile, endpoint string
	poll                                       time.Duration
}

func (f *awsFlags) add(c *cobra.Command) {
	fileFlag(c, &f.file)
	c.Flags().StringVar(&f.stackName, "stack-name", "", "CloudFormation stack name (default: the stack file's name)")
	c.Flags().StringVar(&f.region, "region", "", "AWS region (default: the stack file's aws.region)")
	c.Flags().StringVar(&f.profile, "profile", "", "AWS profile (default: $AWS_PROFILE, then default)")
	// The endpoint sends every AWS call elsewhere; tests point it at a
	// local stand-in of CloudFormation. AWS_ENDPOINT_URL works too.
	c.Flags().StringVar(&f.endpoint, "endpoint-url", "", "send AWS calls to this URL (testing)")
	_ = c.Flags().MarkHidden("endpoint-url")
	c.Flags().DurationVar(&f.poll, "poll-interval", 3*time.Second, "interval between CloudFormation status polls")
	_ = c.Flags().MarkHidden("poll-interval")
}

// target resolves the stack name and region. Deploy needs the stack file;
// destroy and outputs use it when it is there, and otherwise need
// --stack-name (and a region from --region or the AWS configuration).
func (f *awsFlags) target(stderr io.Writer, needPlan bool) (*plan.Plan, string, string, error) {
	var p *plan.Plan
	if needPlan || f.stackName == "" || f.file != "" || os.Getenv("MOAT_FILE") != "" || fileExists(stackFile("")) {
		var err error
		if p, err = loadPlan(f.file, stderr); err != nil {
			return nil, "", "", err
		}
	}
	name, region := f.stackName, f.region
	if p != nil {
		if name == "" {
			name = p.Stack
		}
		if region == "" {
			region = p.AWS.Region
		} else if needPlan && region != p.AWS.Region {
			return nil, "", "", withCode(exitUsage, fmt.Errorf("--region %s: the stack file places its zones in %s (aws.region); set aws.region: %s in the file to deploy there", region, p.AWS.Region, region))
		}
	}
	return p, name, region, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// deployer connects to AWS and builds the deployer.
func (f *awsFlags) deployer(ctx context.Context, c *cobra.Command, region string, yes bool, verb string) (*awsdeploy.Deployer, error) {
	// One reader of standard input for the MFA code and the [y/N] answer.
	pr := newPrompter(c.InOrStdin())
	mfa := func() (string, error) {
		fmt.Fprint(c.ErrOrStderr(), "MFA code for the assumed role: ")
		line, err := pr.line(ctx)
		if code := strings.TrimSpace(line); code != "" {
			return code, nil
		}
		fmt.Fprintln(c.ErrOrStderr())
		if err == nil {
			err = errors.New("empty answer")
		}
		return "", fmt.Errorf("no MFA code: %w", err)
	}
	cl, err := awsdeploy.Connect(ctx, awsdeploy.ClientOptions{Region: region, Profile: f.profile, EndpointURL: f.endpoint, MFAToken: mfa})
	if err != nil {
		return nil, err
	}
	tty, width, height := terminalSize(c.ErrOrStderr())
	d := &awsdeploy.Deployer{
		CloudFormation: cl.CloudFormation, S3: cl.S3, STS: cl.STS, Region: cl.Region,
		EC2: cl.EC2, ACM: cl.ACM, SSM: cl.SSM, ELBv2: cl.ELBv2, AutoScaling: cl.AutoScaling, Emulated: cl.Emulated,
		Out: c.ErrOrStderr(), TTY: tty, Color: tty && os.Getenv("NO_COLOR") == "", Poll: f.poll,
		Width: width, Height: height,
	}
	if !yes {
		d.Confirm = func(ctx context.Context, q string) (bool, error) {
			fmt.Fprintf(c.ErrOrStderr(), "%s [y/N] ", q)
			line, err := pr.line(ctx)
			if ctx.Err() != nil {
				fmt.Fprintln(c.ErrOrStderr())
				return false, fmt.Errorf("interrupted at the prompt: %w", ctx.Err())
			}
			if err != nil && line == "" {
				fmt.Fprintln(c.ErrOrStderr())
				return false, withCode(exitUsage, fmt.Errorf("no answer on standard input: pass -y to %s without asking", verb))
			}
			switch strings.ToLower(strings.TrimSpace(line)) {
			case "y", "yes":
				return true, nil
			}
			fmt.Fprintln(c.ErrOrStderr(), "cancelled; nothing was changed")
			return false, nil
		}
	}
	return d, nil
}

// prompter reads answers from standard input, one line at a time, and
// gives up when the context ends: a read blocked on a terminal does not
// keep Ctrl-C from ending the command.
type prompter struct {
	in    *bufio.Reader
	once  sync.Once
	lines chan promptLine
}

type promptLine struct {
	text string
	err  error
}

func newPrompter(r io.Reader) *prompter {
	return &prompter{in: bufio.NewReader(r), lines: make(chan promptLine)}
}

// line returns the next line (without its newline), or ctx's error.
func (p *prompter) line(ctx context.Context) (string, error) {
	p.once.Do(func() {
		go func() {
			for {
				text, err := p.in.ReadString('\n')
				p.lines <- promptLine{strings.TrimRight(text, "\r\n"), err}
				if err != nil {
					close(p.lines)
					return
				}
			}
		}()
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case l, ok := <-p.lines:
		if !ok {
			return "", io.EOF
		}
		return l.text, l.err
	}
}

// terminalSize reports whether w is a terminal, and its size.
func terminalSize(w io.Writer) (tty bool, width, height int) {
	f, ok := w.(*os.File)
	if !ok {
		return false, 0, 0
	}
	if !term.IsTerminal(int(f.Fd())) {
		return false, 0, 0
	}
	if w, h, err := term.GetSize(int(f.Fd())); err == nil {
		return true, w, h
	}
	return true, 0, 0
}

// awsErr maps deploy errors to exit codes.
func awsErr(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, awsdeploy.ErrStackNotFound) {
		return withCode(exitNotFound, err)
	}
	return withCode(exitFailure, err)
}

func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func newDeployCommand() *cobra.Command {
	var f awsFlags
	var yes, updateImage bool
	var verifyTimeout time.Duration
	var bucket string
	var parameters []string
	c := &cobra.Command{
		Use:   "deploy",
		Short: "Create or update the stack on AWS through a CloudFormation change set",
		Long: `Deploy renders the stack file as CloudFormation (as moat template does), validates it
offline, and creates or updates the stack through a change set: it shows what will change
and asks (unless -y), streams the stack's events until CloudFormation finishes, and prints
the stack's outputs. On failure it names the first resource that failed and why, and says
whether CloudFormation rolled back.

Before it creates the change set it checks what only the account knows: that the
stack's zones exist in the region for this account, and that each HTTPS listener's
ACM certificate (certificate.arn, or --parameter NAME=ARN) exists and is issued.
The instances' image is resolved from SSM when the stack is created and kept on
every update, so an unchanged file changes nothing; --update-image takes the latest.
The change set comes with the stack's estimated monthly cost; Ctrl-C at the question
deletes the change set and changes nothing.

After CloudFormation finishes, deploy verifies the stack: it waits (--verify-timeout)
until the load balancer's targets are healthy, showing each unhealthy target's reason,
requests the load balancer's URL once, and prints the outputs and how to SSH in
(moat ssh-config --aws).

Credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
AWS_PROFILE or --profile (~/.aws/config and ~/.aws/credentials; a profile with
mfa_serial asks for the code), IAM Identity Center (SSO) after aws sso login. The
region is the stack file's aws.region (default us-east-1).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, name, region, err := f.target(c.ErrOrStderr(), true)
			if err != nil {
				return err
			}
			if bucket == "" {
				bucket = p.AWS.AssetBucket
			}
			t, err := awscfn.Render(p, awscfn.Options{AssetBucket: bucket})
			if err != nil {
				return withCode(exitInvalid, err)
			}
			if findings := awscfn.Validate(t); len(findings) > 0 {
				var b strings.Builder
				for _, fd := range findings {
					fmt.Fprintf(&b, "\n  %s", fd)
				}
				return withCode(exitInvalid, fmt.Errorf("the rendered template has %d problems; not deploying:%s", len(findings), b.String()))
			}
			given, err := templateParameters(t, parameters)
			if err != nil {
				return withCode(exitUsage, err)
			}
			body, err := t.JSON()
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(c.Context())
			defer cancel()
			d, err := f.deployer(ctx, c, region, yes, "deploy")
			if err != nil {
				return awsErr(err)
			}
			spec := awsdeploy.Spec{StackName: name, Template: body, Bucket: bucket, Tags: map[string]string{"moat:stack": p.Stack},
				Parameters: given, Certificates: awsdeploy.CertificateParams(t), UpdateImage: updateImage}
			for _, z := range p.Zones {
				spec.Zones = append(spec.Zones, z.AWSName)
			}
			if e, err := awscost.Monthly(p); err == nil {
				spec.Estimate = "estimated cost: " + e.Summary() + " (moat template --cost itemizes it)"
			} else {
				spec.Estimate = "estimated cost: none: " + err.Error()
			}
			spec.Images = awscfn.ImageParameters(p)
			for _, a := range t.Assets {
				spec.Assets = append(spec.Assets, awsdeploy.Asset{Name: a.Name, Dir: a.Dir, ParamBucket: a.ParamBucket, ParamKey: a.ParamKey})
			}
			fmt.Fprintf(c.ErrOrStderr(), "deploying stack %s to %s\n", name, d.Region)
			res, err := d.Deploy(ctx, spec)
			if err != nil {
				return awsErr(err)
			}
			if res.Cancelled {
				return nil
			}
			if !res.NoChanges {
				fmt.Fprintf(c.ErrOrStderr(), "stack %s: %s\n", name, res.Status)
			}
			var verr error
			if !res.NoChanges && verifyTimeout > 0 {
				verr = verifyDeployed(ctx, c.ErrOrStderr(), d, p, name, res.Outputs, verifyTimeout)
			}
			if err := writeOutputs(c.OutOrStdout(), res.Outputs); err != nil {
				return err
			}
			if verr != nil {
				return awsErr(verr)
			}
			if p.Bastion != nil {
				fmt.Fprintf(c.ErrOrStderr(), "ssh: moat ssh-config --aws -f %s >> ~/.ssh/config, then ssh %s-bastion (or an instance: moat ssh-config --aws lists them)\n", stackFile(f.file), name)
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVarP(&yes, "yes", "y", false, "deploy without asking")
	c.Flags().StringVar(&bucket, "bucket", "", "S3 bucket for the app's files (default: the file's aws.assetBucket; without one, small apps travel in user data)")
	c.Flags().StringArrayVar(&parameters, "parameter", nil, "template parameter value NAME=VALUE, e.g. an HTTPS listener's certificate: LoadBalancerWebListener443CertificateArn=arn:aws:acm:... (repeatable)")
	c.Flags().DurationVar(&verifyTimeout, "verify-timeout", 10*time.Minute, "after CloudFormation finishes, wait this long for the load balancer's targets to be healthy, then request the load balancer's URL once (0: skip)")
	c.Flags().BoolVar(&updateImage, "update-image", false, "resolve the instances' image again (the latest Amazon Linux) instead of keeping the deployed one; replaces the bastion and rolls the groups")
	return c
}

// verifyDeployed checks what deploy made: the target groups' targets turn
// healthy (within timeout), and the load balancer answers one request.
func verifyDeployed(ctx context.Context, w io.Writer, d *awsdeploy.Deployer, p *plan.Plan, stack string, outs []awsdeploy.Output, timeout time.Duration) error {
	// The target groups some group with instances registers in.
	expect := map[string]bool{}
	for _, g := range p.AutoScalingGroups {
		if g.DesiredCapacity > 0 {
			for _, tg := range g.TargetGroups {
				expect[tg] = true
			}
		}
	}
	if len(expect) > 0 {
		fmt.Fprintf(w, "verifying: waiting up to %s for the targets to be healthy\n", timeout)
		registered := func(logicalID string) bool {
			for name := range expect {
				if logicalIs(logicalID, "TargetGroup", name) {
					return true
				}
			}
			return false
		}
		if _, err := d.WaitHealthy(ctx, stack, registered, timeout); err != nil {
			return err
		}
	}
	for _, lb := range p.LoadBalancers {
		key := awscfn.OutputURL(lb.Name)
		url := ""
		for _, o := range outs {
			if o.Key == key {
				url = o.Value
			}
		}
		if url == "" {
			fmt.Fprintf(w, "verifying: no request to load balancer %s: the stack has no output %s\n", lb.Name, key)
			continue
		}
		status, err := d.Request(ctx, url)
		switch {
		case errors.Is(err, awsdeploy.ErrEmulated):
			fmt.Fprintf(w, "verifying: no request to %s: %v\n", url, err)
		case err != nil:
			return err
		default:
			fmt.Fprintf(w, "verifying: %s\n", status)
		}
	}
	return nil
}

// logicalIs reports whether a logical id is the renderer's for a resource
// of the file: prefix + the name in camel case ("TargetGroup", "web" ->
// TargetGroupWeb).
func logicalIs(logicalID, prefix, name string) bool {
	return strings.EqualFold(logicalID, prefix+strings.ReplaceAll(name, "-", ""))
}

// templateParameters parses --parameter NAME=VALUE flags against the
// template's parameters.
func templateParameters(t *awscfn.Template, flags []string) (map[string]string, error) {
	var names []string
	for _, p := range t.Parameters {
		names = append(names, p.Name)
	}
	out := map[string]string{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--parameter %q: write NAME=VALUE", f)
		}
		if !slices.Contains(names, k) {
			return nil, fmt.Errorf("--parameter %s: the template has no parameter %s; it has: %s", k, k, strings.Join(names, ", "))
		}
		out[k] = v
	}
	return out, nil
}

func newDestroyCommand() *cobra.Command {
	var f awsFlags
	var yes bool
	c := &cobra.Command{
		Use:   "destroy",
		Short: "Delete the stack on AWS and everything in it, and wait until it is gone",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, name, region, err := f.target(c.ErrOrStderr(), false)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(c.Context())
			defer cancel()
			d, err := f.deployer(ctx, c, region, yes, "destroy")
			if err != nil {
				return awsErr(err)
			}
			res, err := d.Destroy(ctx, name)
			if err != nil {
				return awsErr(err)
			}
			if !res.Cancelled {
				fmt.Fprintf(c.ErrOrStderr(), "stack %s deleted\n", name)
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return c
}

func newOutputsCommand() *cobra.Command {
	var f awsFlags
	var output string
	c := &cobra.Command{
		Use:   "outputs",
		Short: "Print the outputs of the stack on AWS (load balancer URL, bastion address, ssh command)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, name, region, err := f.target(c.ErrOrStderr(), false)
			if err != nil {
				return err
			}
			d, err := f.deployer(c.Context(), c, region, true, "")
			if err != nil {
				return awsErr(err)
			}
			outs, err := d.Outputs(c.Context(), name)
			if err != nil {
				return awsErr(err)
			}
			if output == "json" {
				if outs == nil {
					outs = []awsdeploy.Output{}
				}
				return writeJSON(c.OutOrStdout(), outs)
			}
			return writeOutputs(c.OutOrStdout(), outs)
		},
	}
	f.add(c)
	outputFlag(c, &output)
	return c
}

func writeOutputs(w io.Writer, outs []awsdeploy.Output) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tVALUE")
	for _, o := range outs {
		fmt.Fprintf(tw, "%s\t%s\n", o.Key, o.Value)
	}
	return tw.Flush()
}
