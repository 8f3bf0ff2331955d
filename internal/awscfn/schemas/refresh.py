#!/usr/bin/env python3
"""Refresh the vendored CloudFormation resource provider schemas.

The schemas are AWS's published CloudFormation registry schemas for
us-east-1, as shipped (with cfn-lint's documented patches) inside the
cfn-lint package, which is part of this project's machine image
(`pip show cfn-lint`). Only the resource types the renderer emits are
vendored; keep TYPES in step with internal/awscfn/render.go (the Go test
TestSchemasCoverEmittedTypes fails when a type is missing).

Run from this directory: python3 refresh.py   (or: go generate ./internal/awscfn)
"""
import json
import sys
from importlib.metadata import version

from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

REGION = "us-east-1"
TYPES = [
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::AutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::EC2::EIP",
    "AWS::EC2::Instance",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::KeyPair",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::NatGateway",
    "AWS::EC2::NetworkAcl",
    "AWS::EC2::NetworkAclEntry",
    "AWS::EC2::Route",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::Subnet",
    "AWS::EC2::SubnetNetworkAclAssociation",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPC",
    "AWS::EC2::VPCEndpoint",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::ElasticLoadBalancingV2::Listener",
    "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::FIS::ExperimentTemplate",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::Role",
]


def main() -> int:
    for t in TYPES:
        s = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, t).schema
        name = t.lower().replace("::", "-") + ".json"
        with open(name, "w") as f:
            json.dump(s, f, indent=1, sort_keys=True)
            f.write("\n")
    with open("VERSION", "w") as f:
        f.write(f"cfn-lint {version('cfn-lint')} region {REGION}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
