package cfnstandin_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"

	"github.com/moat-dev/moat/internal/awsdeploy/cfnstandin"
)

// The stand-in answers the real SDK client with CloudFormation's own error
// codes where moat depends on them.
func TestStandInRejectsAsCloudFormationDoes(t *testing.T) {
	s := cfnstandin.New()
	defer s.Close()
	c := cloudformation.New(cloudformation.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIASTANDIN", "secret", ""),
	})
	ctx := context.Background()
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode() + ": " + ae.ErrorMessage()
		}
		return "not an API error: " + err.Error()
	}

	_, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("nope")})
	if got := code(err); got != "ValidationError: Stack with id nope does not exist" {
		t.Errorf("describe missing stack: %s", got)
	}
	role := `{"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {}}}}`
	_, err = c.CreateChangeSet(ctx, &cloudformation.CreateChangeSetInput{StackName: aws.String("s"), ChangeSetName: aws.String("c"), ChangeSetType: "CREATE", TemplateBody: aws.String(role)})
	if got := code(err); !strings.HasPrefix(got, "InsufficientCapabilitiesException: Requires capabilities : [CAPABILITY_IAM]") {
		t.Errorf("IAM without capabilities: %s", got)
	}
	big := `{"Resources": {"R": {"Type": "AWS::SSM::Parameter", "Properties": {"Value": "` + strings.Repeat("x", cfnstandin.MaxTemplateBody) + `"}}}}`
	_, err = c.CreateChangeSet(ctx, &cloudformation.CreateChangeSetInput{StackName: aws.String("s"), ChangeSetName: aws.String("c"), ChangeSetType: "CREATE", TemplateBody: aws.String(big)})
	if got := code(err); !strings.Contains(got, "less than or equal to 51200") {
		t.Errorf("oversized body: %s", got)
	}
	_, err = c.CreateChangeSet(ctx, &cloudformation.CreateChangeSetInput{StackName: aws.String("s"), ChangeSetName: aws.String("c"), ChangeSetType: "UPDATE", TemplateBody: aws.String(`{"Resources": {"R": {"Type": "AWS::SNS::Topic"}}}`)})
	if got := code(err); !strings.Contains(got, "ValidationError: Stack [s] does not exist") {
		t.Errorf("update of a missing stack: %s", got)
	}
	noDefault := `{"Parameters": {"P": {"Type": "String"}}, "Resources": {"R": {"Type": "AWS::SNS::Topic"}}}`
	_, err = c.CreateChangeSet(ctx, &cloudformation.CreateChangeSetInput{StackName: aws.String("s"), ChangeSetName: aws.String("c"), ChangeSetType: "CREATE", TemplateBody: aws.String(noDefault)})
	if got := code(err); got != "ValidationError: Parameters: [P] must have values" {
		t.Errorf("missing parameter: %s", got)
	}

	// Unsigned requests are refused.
	resp, err := http.Post(s.URL, "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeStacks&Version=2010-05-15"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned request: %d", resp.StatusCode)
	}
}
