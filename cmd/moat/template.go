package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/awscfn"
	"github.com/moat-dev/moat/internal/awscost"
	"github.com/moat-dev/moat/internal/plan"
)

func init() { register(newTemplateCommand) }

// templateFlags are shared by moat template and moat template validate.
type templateFlags struct {
	file, output, bucket string
	experiments          []string
}

func (f *templateFlags) add(c *cobra.Command, outputHelp string) {
	fileFlag(c, &f.file)
	c.Flags().StringVarP(&f.output, "output", "o", "", outputHelp)
	c.Flags().StringVar(&f.bucket, "asset-bucket", "", "ship app files through this S3 bucket instead of inlining them in user data (default: the file's aws.assetBucket, as moat deploy does)")
	c.Flags().StringArrayVar(&f.experiments, "experiment", nil, "also render this AWS FIS experiment template (JSON) as AWS::FIS::ExperimentTemplate, named after the file (besides the stack file's experiments)")
}

// render loads the stack file and renders its template.
func (f *templateFlags) render(stderr io.Writer) (*awscfn.Template, error) {
	p, err := loadPlan(f.file, stderr)
	if err != nil {
		return nil, err
	}
	for _, e := range f.experiments {
		name := strings.TrimSuffix(filepath.Base(e), filepath.Ext(e))
		if slices.ContainsFunc(p.Experiments, func(x plan.Experiment) bool { return x.Name == name }) {
			return nil, withCode(exitUsage, fmt.Errorf("--experiment %s: the stack already has an experiment named %s", e, name))
		}
		path, err := filepath.Abs(e)
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("--experiment: %w", err))
		}
		p.Experiments = append(p.Experiments, plan.Experiment{Name: name, Template: path})
	}
	bucket := f.bucket
	if bucket == "" {
		bucket = p.AWS.AssetBucket // what moat deploy sends without --bucket
	}
	t, err := awscfn.Render(p, awscfn.Options{AssetBucket: bucket})
	if err != nil {
		return nil, withCode(exitInvalid, err)
	}
	return t, nil
}

func newTemplateCommand() *cobra.Command {
	var f templateFlags
	var validate, cost bool
	c := &cobra.Command{
		Use:   "template",
		Short: "Print the stack as an AWS CloudFormation template (--validate: check it offline)",
		Long: `Template renders the stack file as an AWS CloudFormation template: VPC, subnets,
internet and NAT gateways, routes, security groups, key pair, bastion, launch
template, auto scaling group, load balancer, target groups and scaling
policies. moat deploy sends the same template.

With --validate it prints no template but checks it offline against AWS's
CloudFormation resource schemas and moat's own rules, prints each finding
(resource.property.path: problem) and exits 1 if there is any.

With --cost it prints no template but an estimate of what the stack costs a
month on AWS (instances, NAT gateways, load balancers, public IPv4 addresses)
at on-demand prices from moat's price table, with the table's date.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if validate {
				return runTemplateValidate(c, &f, "")
			}
			if cost {
				return runTemplateCost(c, &f)
			}
			t, err := f.render(c.ErrOrStderr())
			if err != nil {
				return err
			}
			var b []byte
			switch f.output {
			case "yaml", "":
				b, err = t.YAML()
			case "json":
				b, err = t.JSON()
				b = append(b, '\n')
			default:
				return withCode(exitUsage, fmt.Errorf("unknown output format %q: use yaml or json", f.output))
			}
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(b)
			return err
		},
	}
	f.add(c, "template format: yaml or json (with --validate: text or json)")
	c.Flags().BoolVar(&validate, "validate", false, "check the template offline instead of printing it; exit 1 on findings")
	c.Flags().BoolVar(&cost, "cost", false, "print the stack's estimated monthly cost on AWS instead of the template (-o json for JSON)")
	c.AddCommand(newTemplateValidateCommand())
	return c
}

func newTemplateValidateCommand() *cobra.Command {
	var f templateFlags
	var templateFile string
	c := &cobra.Command{
		Use:   "validate",
		Short: "Check the rendered template offline: resource schemas and moat's rules; exit 1 on findings",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runTemplateValidate(c, &f, templateFile)
		},
	}
	f.add(c, "findings format: text or json")
	c.Flags().StringVar(&templateFile, "template", "", "check this JSON template instead of rendering the stack file")
	return c
}

// runTemplateValidate prints findings on stdout (data) and a summary on
// stderr.
func runTemplateValidate(c *cobra.Command, f *templateFlags, templateFile string) error {
	var t *awscfn.Template
	name := stackFile(f.file)
	if templateFile != "" {
		b, err := os.ReadFile(templateFile)
		if err != nil {
			return withCode(exitUsage, err)
		}
		if t, err = awscfn.ParseJSON(b); err != nil {
			return withCode(exitInvalid, fmt.Errorf("%s: %w", templateFile, err))
		}
		name = templateFile
	} else {
		var err error
		if t, err = f.render(c.ErrOrStderr()); err != nil {
			return err
		}
	}
	findings := awscfn.Validate(t)
	switch f.output {
	case "json":
		out := make([]map[string]string, 0, len(findings))
		for _, fd := range findings {
			out = append(out, map[string]string{"path": fd.Path, "message": fd.Message})
		}
		if err := writeJSON(c.OutOrStdout(), out); err != nil {
			return err
		}
	case "text", "":
		for _, fd := range findings {
			fmt.Fprintln(c.OutOrStdout(), fd.String())
		}
	default:
		return withCode(exitUsage, fmt.Errorf("unknown output format %q: use text or json", f.output))
	}
	if len(findings) > 0 {
		return withCode(exitFailure, fmt.Errorf("%s: the template has %d finding(s)", name, len(findings)))
	}
	fmt.Fprintf(c.ErrOrStderr(), "%s: template valid offline (%d resources checked against %d CloudFormation resource schemas and moat's rules)\n",
		name, len(t.Resources), len(awscfn.SchemaTypes()))
	return nil
}

// runTemplateCost prints the estimated monthly cost of the stack file's
// stack: a table, or JSON with -o json.
func runTemplateCost(c *cobra.Command, f *templateFlags) error {
	p, err := loadPlan(f.file, c.ErrOrStderr())
	if err != nil {
		return err
	}
	e, err := awscost.Monthly(p)
	if err != nil {
		return withCode(exitInvalid, err)
	}
	switch f.output {
	case "json":
		return writeJSON(c.OutOrStdout(), e)
	case "", "text", "yaml":
		_, err := io.WriteString(c.OutOrStdout(), e.Table())
		return err
	}
	return withCode(exitUsage, fmt.Errorf("unknown output format %q: use text or json", f.output))
}
