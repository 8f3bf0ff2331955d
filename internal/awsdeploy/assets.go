package awsdeploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Asset is a local directory or file the template expects in S3: deploy
// bundles it, uploads it, and passes its bucket and key as the two named
// template parameters.
type Asset struct {
	Name                  string
	Dir                   string
	ParamBucket, ParamKey string
}

// BundleKey is the S3 key for an asset's bundle: stack, asset name and the
// first 32 hex digits of the bundle's SHA-256.
func BundleKey(stack, name string, bundle []byte) string {
	sum := sha256.Sum256(bundle)
	return fmt.Sprintf("%s/%s-%s.tar.gz", stack, name, hex.EncodeToString(sum[:])[:32])
}

// ManagedBucket is the bucket moat creates for assets and large templates
// when --bucket is not given: one per account and region.
func ManagedBucket(account, region string) string {
	return fmt.Sprintf("moat-assets-%s-%s", account, region)
}

// bucket returns the bucket to upload to, creating moat's managed bucket
// on first use.
func (d *Deployer) bucket(ctx context.Context, given string) (string, error) {
	if d.resolvedBucket != "" {
		return d.resolvedBucket, nil
	}
	if d.S3 == nil {
		return "", errors.New("this deployment uploads to S3, but no S3 client is configured")
	}
	if given != "" {
		if _, err := d.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(given)}); err != nil {
			return "", credentialsTrouble(fmt.Errorf("bucket %s is not usable: %w (create it, or leave --bucket out to use moat's own bucket)", given, apiError(err)))
		}
		d.resolvedBucket = given
		return given, nil
	}
	if d.STS == nil {
		return "", errors.New("no bucket given and no STS client to name moat's bucket: pass --bucket")
	}
	id, err := d.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", credentialsTrouble(fmt.Errorf("find the account id for moat's asset bucket: %w", apiError(err)))
	}
	name := ManagedBucket(aws.ToString(id.Account), d.Region)
	_, err = d.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name), ExpectedBucketOwner: id.Account})
	switch status := httpStatus(err); {
	case err == nil:
	case status == http.StatusNotFound:
		in := &s3.CreateBucketInput{Bucket: aws.String(name)}
		if d.Region != "us-east-1" {
			in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(d.Region)}
		}
		if _, err := d.S3.CreateBucket(ctx, in); err != nil {
			return "", credentialsTrouble(fmt.Errorf("create moat's asset bucket %s: %w", name, apiError(err)))
		}
		fmt.Fprintf(d.out(), "created bucket %s for moat's assets (moat destroy keeps it; remove it with `aws s3 rb s3://%s --force`)\n", name, name)
	case status == http.StatusForbidden:
		return "", fmt.Errorf("bucket %s belongs to another account or denies access: pass --bucket with a bucket of yours", name)
	default:
		return "", credentialsTrouble(fmt.Errorf("check moat's asset bucket %s: %w", name, apiError(err)))
	}
	d.resolvedBucket = name
	return name, nil
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// upload puts one object.
func (d *Deployer) upload(ctx context.Context, bucket, key string, body []byte, contentType string) error {
	_, err := d.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String(contentType), ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		return credentialsTrouble(fmt.Errorf("upload s3://%s/%s: %w", bucket, key, apiError(err)))
	}
	return nil
}
