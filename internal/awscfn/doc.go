package awscfn

import "encoding/json"

func (t *Template) doc() map[string]any { return map[string]any{"AWSTemplateFormatVersion": "2010-09-09"} }

func (t *Template) yaml() ([]byte, error) { return json.Marshal(t.doc()) }
