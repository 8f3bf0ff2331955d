// Package ec2facts holds what EC2 documents and enforces but CloudFormation's
// resource schemas do not say: the CPU architecture of an instance type, the
// zone letters each region has, and the characters EC2 takes in security
// group descriptions. Each is a small pure function over a table, with the
// table's source named beside it, so validation (package spec), the
// renderer (package awscfn) and moat deploy agree on one answer.
package ec2facts
