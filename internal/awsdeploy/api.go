package awsdeploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// CloudFormation is the part of the CloudFormation API moat uses.
type CloudFormation interface {
	DescribeStacks(context.Context, *cloudformation.DescribeStacksInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
	CreateChangeSet(context.Context, *cloudformation.CreateChangeSetInput, ...func(*cloudformation.Options)) (*cloudformation.CreateChangeSetOutput, error)
	DescribeChangeSet(context.Context, *cloudformation.DescribeChangeSetInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeChangeSetOutput, error)
	ExecuteChangeSet(context.Context, *cloudformation.ExecuteChangeSetInput, ...func(*cloudformation.Options)) (*cloudformation.ExecuteChangeSetOutput, error)
	DeleteChangeSet(context.Context, *cloudformation.DeleteChangeSetInput, ...func(*cloudformation.Options)) (*cloudformation.DeleteChangeSetOutput, error)
	DescribeStackEvents(context.Context, *cloudformation.DescribeStackEventsInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStackEventsOutput, error)
	DeleteStack(context.Context, *cloudformation.DeleteStackInput, ...func(*cloudformation.Options)) (*cloudformation.DeleteStackOutput, error)
	ListStackResources(context.Context, *cloudformation.ListStackResourcesInput, ...func(*cloudformation.Options)) (*cloudformation.ListStackResourcesOutput, error)
	GetTemplateSummary(context.Context, *cloudformation.GetTemplateSummaryInput, ...func(*cloudformation.Options)) (*cloudformation.GetTemplateSummaryOutput, error)
}

// EC2 is the part of the EC2 API moat uses: the zones an account has
// (checked before a change set) and the instances of a deployed stack
// (for its SSH configuration).
type EC2 interface {
	DescribeAvailabilityZones(context.Context, *ec2.DescribeAvailabilityZonesInput, ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// ACM tells whether the certificate of an HTTPS listener exists.
type ACM interface {
	DescribeCertificate(context.Context, *acm.DescribeCertificateInput, ...func(*acm.Options)) (*acm.DescribeCertificateOutput, error)
}

// ELBv2 reports the health of the deployed target groups' targets.
type ELBv2 interface {
	DescribeTargetHealth(context.Context, *elbv2.DescribeTargetHealthInput, ...func(*elbv2.Options)) (*elbv2.DescribeTargetHealthOutput, error)
}

// SSM resolves the image parameters (the latest Amazon Linux image).
type SSM interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// AutoScaling lists the instances of the deployed groups.
type AutoScaling interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
}

// S3 is the part of the S3 API moat uses to ship assets and large templates.
type S3 interface {
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(context.Context, *s3.CreateBucketInput, ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Identity tells the account id, for the name of moat's asset bucket.
type Identity interface {
	GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

var (
	_ CloudFormation = (*cloudformation.Client)(nil)
	_ S3             = (*s3.Client)(nil)
	_ Identity       = (*sts.Client)(nil)
	_ EC2            = (*ec2.Client)(nil)
	_ ACM            = (*acm.Client)(nil)
	_ ELBv2          = (*elbv2.Client)(nil)
	_ SSM            = (*ssm.Client)(nil)
	_ AutoScaling    = (*autoscaling.Client)(nil)
)

// ClientOptions select the account, region and endpoint.
type ClientOptions struct {
	// Region overrides the region from the environment and profile.
	Region string
	// Profile selects a named profile (otherwise AWS_PROFILE, then default).
	Profile string
	// EndpointURL sends every call to this URL instead of AWS (tests use
	// it to reach the local stand-in). AWS_ENDPOINT_URL and
	// AWS_ENDPOINT_URL_CLOUDFORMATION work too, as in every AWS SDK.
	EndpointURL string
	// MFAToken answers the MFA prompt of a profile with mfa_serial (an
	// assumed role that needs a code); nil reads it from standard input
	// (stscreds.StdinTokenProvider).
	MFAToken func() (string, error)
}

// Clients are the SDK clients, ready to use.
type Clients struct {
	CloudFormation *cloudformation.Client
	S3             *s3.Client
	STS            *sts.Client
	EC2            *ec2.Client
	ACM            *acm.Client
	ELBv2          *elbv2.Client
	SSM            *ssm.Client
	AutoScaling    *autoscaling.Client
	Region         string
	// Emulated is set when the calls go to a custom endpoint (an
	// emulator or a stand-in) rather than AWS.
	Emulated bool
}

// ErrNoRegion means neither a flag, the environment nor the profile named
// a region.
var ErrNoRegion = errors.New("no AWS region: pass --region, set AWS_REGION, or set a region in your profile (aws configure)")

// CredentialsError means the standard credential chain found no usable
// credentials (or AWS rejected them).
type CredentialsError struct {
	Profile string
	Err     error
}

func (e *CredentialsError) Error() string {
	profile := ""
	if e.Profile != "" {
		profile = " --profile " + e.Profile
	}
	return fmt.Sprintf("no usable AWS credentials: the standard chain (environment, ~/.aws/credentials, ~/.aws/config profiles, SSO, instance role) gave none that work\n"+
		"  detail: %v\n"+
		"  fix: run `aws configure%s` to store access keys, or set AWS_PROFILE to a configured profile,\n"+
		"       or for IAM Identity Center (SSO) run `aws sso login%s` (SSO sessions expire);\n"+
		"       AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) work too",
		e.Err, profile, profile)
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// Connect loads the standard AWS configuration (environment, shared config
// and credentials files, SSO, process credentials, assumed roles with or
// without MFA, the instance role), checks that it names a region and yields
// credentials, and builds the clients. It makes no call to AWS unless a
// credential source needs one (SSO, assumed roles).
func Connect(ctx context.Context, o ClientOptions) (*Clients, error) {
	cfg, err := LoadConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, &CredentialsError{Profile: o.Profile, Err: err}
	}
	// A custom endpoint (an emulator, LocalStack, a VPC endpoint) is
	// addressed by path, not by bucket host name.
	custom := o.EndpointURL != "" || os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return &Clients{
		CloudFormation: cloudformation.NewFromConfig(cfg),
		S3:             s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = custom }),
		STS:            sts.NewFromConfig(cfg),
		EC2:            ec2.NewFromConfig(cfg),
		ACM:            acm.NewFromConfig(cfg),
		ELBv2:          elbv2.NewFromConfig(cfg),
		SSM:            ssm.NewFromConfig(cfg),
		AutoScaling:    autoscaling.NewFromConfig(cfg),
		Region:         cfg.Region,
		Emulated:       custom || os.Getenv("AWS_ENDPOINT_URL_CLOUDFORMATION") != "",
	}, nil
}

// LoadConfig loads the AWS configuration as Connect does, without
// retrieving credentials: a profile that assumes a role with mfa_serial
// gets a token provider (ClientOptions.MFAToken), which the SDK requires
// before it loads such a profile at all.
func LoadConfig(ctx context.Context, o ClientOptions) (aws.Config, error) {
	token := o.MFAToken
	if token == nil {
		token = stscreds.StdinTokenProvider
	}
	opts := []func(*config.LoadOptions) error{
		config.WithAssumeRoleCredentialOptions(func(ao *stscreds.AssumeRoleOptions) { ao.TokenProvider = token }),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.EndpointURL != "" {
		opts = append(opts, config.WithBaseEndpoint(o.EndpointURL))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		var pe config.SharedConfigProfileNotExistError
		if errors.As(err, &pe) {
			return aws.Config{}, fmt.Errorf("AWS profile %q is not in ~/.aws/config or ~/.aws/credentials: run `aws configure --profile %s` or `aws configure sso`, or pick another with AWS_PROFILE", pe.Profile, pe.Profile)
		}
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, ErrNoRegion
	}
	return cfg, nil
}

// credentialsTrouble turns an API error caused by credentials into a
// CredentialsError; other errors pass through.
func credentialsTrouble(err error) error {
	if err == nil {
		return nil
	}
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return err
	}
	msg := err.Error()
	for _, s := range []string{"failed to retrieve credentials", "failed to refresh cached credentials", "ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "refresh cached SSO token failed"} {
		if strings.Contains(msg, s) {
			return &CredentialsError{Err: err}
		}
	}
	return err
}

// apiError shortens an error AWS answered to its code and message
// ("InvalidParameterValue: Value (ap-northeast-1b) for parameter ..."),
// without the SDK's operation, status and request id; errors.As and
// errors.Is still reach the SDK's error through it.
func apiError(err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	return &shortAPIError{err: err, code: ae.ErrorCode(), msg: ae.ErrorMessage()}
}

type shortAPIError struct {
	err       error
	code, msg string
}

func (e *shortAPIError) Error() string { return e.code + ": " + e.msg }
func (e *shortAPIError) Unwrap() error { return e.err }
