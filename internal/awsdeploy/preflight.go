package awsdeploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/moat-dev/moat/internal/awscfn"
)

// What only the account knows is checked before a change set is created:
// the zones the stack's subnets go in, and the certificates of its HTTPS
// listeners. AWS would refuse both only halfway through creating the stack
// (a subnet, a listener), after the resources before them were made and
// while the rollback deletes them again.

// CertificateParam is the template parameter that takes the ACM
// certificate of an HTTPS listener.
type CertificateParam struct {
	// Parameter is the template parameter's name.
	Parameter string
	// Listener is the listener's logical id and port, for messages.
	Listener string
	// Default is the parameter's default (the file's certificate.arn).
	Default string
}

// CertificateParams lists the certificate parameters of a template's HTTPS
// listeners: each Listener whose Certificates name a parameter by Ref.
func CertificateParams(t *awscfn.Template) []CertificateParam {
	defaults := map[string]string{}
	for _, p := range t.Parameters {
		defaults[p.Name] = p.Default
	}
	var out []CertificateParam
	for _, r := range t.Resources {
		if r.Type != "AWS::ElasticLoadBalancingV2::Listener" {
			continue
		}
		certs, _ := r.Properties["Certificates"].([]any)
		for _, c := range certs {
			m, _ := c.(map[string]any)
			ref, _ := m["CertificateArn"].(map[string]any)
			name, ok := ref["Ref"].(string)
			if !ok {
				continue
			}
			d, isParam := defaults[name]
			if !isParam {
				continue
			}
			out = append(out, CertificateParam{Parameter: name, Listener: fmt.Sprintf("%s (port %v)", r.ID, r.Properties["Port"]), Default: d})
		}
	}
	return out
}

// ZoneError says that zones the stack uses are not available to the account.
type ZoneError struct {
	Region  string
	Missing []string // full names, e.g. ap-northeast-1b
	Have    []string // the account's available zones in the region
}

func (e *ZoneError) Error() string {
	var letters []string
	for _, z := range e.Have {
		letters = append(letters, strings.TrimPrefix(z, e.Region))
	}
	return fmt.Sprintf("zone %s is not available to this account in %s: it has %s; set vpc.zones in the stack file to letters among [%s]",
		strings.Join(e.Missing, ", "), e.Region, strings.Join(e.Have, ", "), strings.Join(letters, " "))
}

// CheckZones decides which wanted zones an account lacks: nil when every
// one is among have.
func CheckZones(region string, want, have []string) error {
	var missing []string
	for _, z := range want {
		if !slices.Contains(have, z) && !slices.Contains(missing, z) {
			missing = append(missing, z)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	have = slices.Clone(have)
	sort.Strings(have)
	return &ZoneError{Region: region, Missing: missing, Have: have}
}

// CheckCertificateARN checks an HTTPS listener's certificate value before
// any call: present, an ACM ARN, in the stack's region.
func CheckCertificateARN(c CertificateParam, value, region string) error {
	how := fmt.Sprintf("pass --parameter %s=arn:aws:acm:%s:ACCOUNT:certificate/ID, or set certificate.arn on the listener in the stack file", c.Parameter, region)
	if value == "" {
		return fmt.Errorf("HTTPS listener %s has no certificate: %s", c.Listener, how)
	}
	parts := strings.SplitN(value, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "acm" || !strings.HasPrefix(parts[5], "certificate/") {
		return fmt.Errorf("HTTPS listener %s: certificate %q is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID): %s", c.Listener, value, how)
	}
	if parts[3] != region {
		return fmt.Errorf("HTTPS listener %s: certificate %s is in %s, but a load balancer in %s needs a certificate from ACM in %s: request or import one there", c.Listener, value, parts[3], region, region)
	}
	return nil
}

// preflight checks the zones and certificates with the account, before a
// change set is created. params are the values deploy will pass, keep the
// parameters that keep their value in previous (the stack's current values,
// nil for a new stack).
func (d *Deployer) preflight(ctx context.Context, spec Spec, params, previous map[string]string, keep map[string]bool) error {
	if len(spec.Zones) > 0 {
		if d.EC2 == nil {
			return errors.New("no EC2 client to check the stack's zones")
		}
		out, err := d.EC2.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
		if err != nil {
			return credentialsTrouble(fmt.Errorf("list the availability zones of %s: %w", d.Region, apiError(err)))
		}
		var have []string
		for _, z := range out.AvailabilityZones {
			if z.State == "" || z.State == "available" {
				have = append(have, aws.ToString(z.ZoneName))
			}
		}
		if err := CheckZones(d.Region, spec.Zones, have); err != nil {
			return err
		}
	}
	for _, c := range spec.Certificates {
		value, given := params[c.Parameter]
		switch {
		case given:
		case keep[c.Parameter]:
			value = previous[c.Parameter]
		default:
			value = c.Default
		}
		if err := CheckCertificateARN(c, value, d.Region); err != nil {
			return err
		}
		if d.ACM == nil {
			return errors.New("no ACM client to check the listeners' certificates")
		}
		out, err := d.ACM.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(value)})
		var ae smithy.APIError
		switch {
		case errors.As(err, &ae) && (ae.ErrorCode() == "ResourceNotFoundException" || ae.ErrorCode() == "CertificateNotFound"):
			return fmt.Errorf("HTTPS listener %s: certificate %s does not exist in ACM in %s (CertificateNotFound): request or import it in ACM in %s, or pass the right ARN with --parameter %s=ARN",
				c.Listener, value, d.Region, d.Region, c.Parameter)
		case err != nil:
			return credentialsTrouble(fmt.Errorf("HTTPS listener %s: check certificate %s: %w", c.Listener, value, apiError(err)))
		}
		if st := out.Certificate.Status; st != acmtypes.CertificateStatusIssued {
			return fmt.Errorf("HTTPS listener %s: certificate %s is %s, and a listener needs an ISSUED certificate: finish its validation in ACM first", c.Listener, value, st)
		}
	}
	return nil
}

// KeepImage decides whether an image parameter keeps the stack's current
// value: on an update, unless --update-image, when the stack has the
// parameter and the deployed template resolved it from the same SSM path
// (previousDescription, the deployed parameter's description, names the
// path it was resolved from). A file that now names another path, or an
// image id, gets it.
func KeepImage(ip awscfn.ImageParameter, previous map[string]string, previousDescription string, updateImage bool) bool {
	if updateImage || ip.SSMPath == "" {
		return false
	}
	if _, had := previous[ip.Name]; !had {
		return false
	}
	return strings.Contains(previousDescription+" ", " "+ip.SSMPath+" ")
}

// parameterDescriptions returns the descriptions of the deployed
// template's parameters.
func (d *Deployer) parameterDescriptions(ctx context.Context, stackID string) (map[string]string, error) {
	out, err := d.CloudFormation.GetTemplateSummary(ctx, &cloudformation.GetTemplateSummaryInput{StackName: aws.String(stackID)})
	if err != nil {
		return nil, credentialsTrouble(fmt.Errorf("read the deployed template's parameters: %w", apiError(err)))
	}
	descs := map[string]string{}
	for _, p := range out.Parameters {
		descs[aws.ToString(p.ParameterKey)] = aws.ToString(p.Description)
	}
	return descs, nil
}

// images sets the image parameters: kept (UsePreviousValue) or resolved.
func (d *Deployer) images(ctx context.Context, spec Spec, stackID string, params map[string]string, keep map[string]bool, previous map[string]string) error {
	var descs map[string]string
	if len(previous) > 0 && len(spec.Images) > 0 && !spec.UpdateImage {
		var err error
		if descs, err = d.parameterDescriptions(ctx, stackID); err != nil {
			return err
		}
	}
	for _, ip := range spec.Images {
		if _, given := params[ip.Name]; given {
			continue
		}
		switch {
		case KeepImage(ip, previous, descs[ip.Name], spec.UpdateImage):
			keep[ip.Name] = true
			fmt.Fprintf(d.out(), "image for %s: %s, kept from the last deploy (moat deploy --update-image takes the latest %s)\n", ip.Arch, previous[ip.Name], ip.SSMPath)
		case ip.SSMPath != "":
			if d.SSM == nil {
				return errors.New("no SSM client to resolve the image")
			}
			out, err := d.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(ip.SSMPath)})
			if err != nil {
				return credentialsTrouble(fmt.Errorf("resolve the %s image from SSM parameter %s: %w", ip.Arch, ip.SSMPath, apiError(err)))
			}
			v := aws.ToString(out.Parameter.Value)
			params[ip.Name] = v
			what := "resolved"
			if previous[ip.Name] != "" && previous[ip.Name] != v {
				what = fmt.Sprintf("updated from %s", previous[ip.Name])
			} else if previous[ip.Name] == v {
				what = "unchanged, the latest"
			}
			fmt.Fprintf(d.out(), "image for %s: %s (%s, from %s)\n", ip.Arch, v, what, ip.SSMPath)
		case ip.ImageID != "":
			params[ip.Name] = ip.ImageID
		}
	}
	return nil
}

// parametersOf returns a stack's parameter values.
func parametersOf(st *types.Stack) map[string]string {
	if st == nil {
		return nil
	}
	out := map[string]string{}
	for _, p := range st.Parameters {
		out[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
	}
	return out
}
