package awsdeploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
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
}

// Clients are the SDK clients, ready to use.
type Clients struct {
	CloudFormation *cloudformation.Client
	S3             *s3.Client
	STS            *sts.Client
	Region         string
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
// and credentials files, SSO, process credentials, the instance role),
// checks that it names a region and yields credentials, and builds the
// clients. It makes no call to AWS unless a credential source needs one
// (SSO, assumed roles).
func Connect(ctx context.Context, o ClientOptions) (*Clients, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		var pe config.SharedConfigProfileNotExistError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("AWS profile %q is not in ~/.aws/config or ~/.aws/credentials: run `aws configure --profile %s` or `aws configure sso`, or pick another with AWS_PROFILE", pe.Profile, pe.Profile)
		}
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, ErrNoRegion
	}
	if o.EndpointURL != "" {
		cfg.BaseEndpoint = aws.String(o.EndpointURL)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, &CredentialsError{Profile: o.Profile, Err: err}
	}
	// A custom endpoint (the stand-in, LocalStack, a VPC endpoint) is
	// addressed by path, not by bucket host name.
	pathStyle := o.EndpointURL != "" || os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return &Clients{
		CloudFormation: cloudformation.NewFromConfig(cfg),
		S3:             s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = pathStyle }),
		STS:            sts.NewFromConfig(cfg),
		Region:         cfg.Region,
	}, nil
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
