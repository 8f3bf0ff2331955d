package ec2facts

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DescriptionCharacters are the characters EC2 takes in a security group's
// description and in a security group rule's description, besides letters
// a-z, A-Z, digits and spaces (EC2 API reference: CreateSecurityGroup
// GroupDescription, and IpRange/UserIdGroupPair Description: "a-z, A-Z,
// 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*").
const DescriptionCharacters = "._-:/()#,@[]+=&;{}!$*"

// MaxDescription is EC2's limit on both descriptions, in characters.
const MaxDescription = 255

// DescriptionAllowed says which characters EC2 takes in descriptions, for
// messages.
const DescriptionAllowed = "a-z, A-Z, 0-9, spaces and " + DescriptionCharacters

// CheckDescription reports why EC2 would refuse s as a security group or
// rule description, or nil.
func CheckDescription(s string) error {
	if n := utf8.RuneCountInString(s); n > MaxDescription {
		return fmt.Errorf("%d characters; EC2 takes at most %d", n, MaxDescription)
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' ||
			strings.ContainsRune(DescriptionCharacters, r)
		if !ok {
			return fmt.Errorf("character %q is not allowed: EC2 takes %s", string(r), DescriptionAllowed)
		}
	}
	return nil
}
