package awscfn

import (
	"slices"
	"testing"
)

func TestCreateOnlyProperties(t *testing.T) {
	kp, ok := CreateOnlyProperties("AWS::EC2::KeyPair")
	if !ok || !slices.Contains(kp, "KeyName") || !slices.Contains(kp, "PublicKeyMaterial") {
		t.Errorf("key pair: %v %v", kp, ok)
	}
	ep, _ := CreateOnlyProperties("AWS::EC2::VPCEndpoint")
	if !slices.Contains(ep, "DnsOptions/PrivateDnsPreference") {
		t.Errorf("nested paths lose their parent: %v", ep)
	}
	if igw, ok := CreateOnlyProperties("AWS::EC2::InternetGateway"); !ok || len(igw) != 0 {
		t.Errorf("internet gateway (a schema without create-only properties): %v %v", igw, ok)
	}
	if _, ok := CreateOnlyProperties("AWS::S3::Bucket"); ok {
		t.Error("a type without a vendored schema reports ok")
	}
}
