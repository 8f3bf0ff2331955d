package ec2facts

import (
	"slices"
	"strings"
)

// zoneLetters are the letters of the Availability Zones of each commercial
// region: the zone names EC2 takes in CreateSubnet. Sources: AWS's list of
// Availability Zones (AZ IDs per region,
// https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-availability-zones.html)
// and the letters EC2 names in its refusal "Subnets can currently only be
// created in the following availability zones: …". Where old accounts see
// different letters (us-west-1: two of a, b, c), the table has every letter
// some account can use; ap-northeast-1b and ca-central-1c exist for no
// new subnet. An account may still lack a zone the table lists (zones are
// mapped per account, some are opt-in): moat deploy asks EC2
// (DescribeAvailabilityZones) before it creates anything.
var zoneLetters = map[string]string{
	"us-east-1":      "abcdef",
	"us-east-2":      "abc",
	"us-west-1":      "abc",
	"us-west-2":      "abcd",
	"ca-central-1":   "abd",
	"ca-west-1":      "abc",
	"mx-central-1":   "abc",
	"sa-east-1":      "abc",
	"eu-west-1":      "abc",
	"eu-west-2":      "abc",
	"eu-west-3":      "abc",
	"eu-central-1":   "abc",
	"eu-central-2":   "abc",
	"eu-north-1":     "abc",
	"eu-south-1":     "abc",
	"eu-south-2":     "abc",
	"ap-northeast-1": "acd",
	"ap-northeast-2": "abcd",
	"ap-northeast-3": "abc",
	"ap-southeast-1": "abc",
	"ap-southeast-2": "abc",
	"ap-southeast-3": "abc",
	"ap-southeast-4": "abc",
	"ap-southeast-5": "abc",
	"ap-southeast-7": "abc",
	"ap-south-1":     "abc",
	"ap-south-2":     "abc",
	"ap-east-1":      "abc",
	"ap-east-2":      "abc",
	"me-south-1":     "abc",
	"me-central-1":   "abc",
	"il-central-1":   "abc",
	"af-south-1":     "abc",
}

// ZoneLetters returns the zone letters of a region, in order; ok is false
// for a region the table does not know.
func ZoneLetters(region string) (letters []string, ok bool) {
	l, ok := zoneLetters[region]
	if !ok {
		return nil, false
	}
	return strings.Split(l, ""), true
}

// HasZone reports whether a region has a zone, given as its letter ("a")
// or its full name ("us-east-1a"). It is true for a region the table does
// not know.
func HasZone(region, zone string) bool {
	letters, ok := ZoneLetters(region)
	if !ok {
		return true
	}
	return slices.Contains(letters, strings.TrimPrefix(zone, region))
}
