package awscfn

func validate(t *Template) []Finding { return nil }
