package cmp

import (
	"encoding/json"
	"fmt"
)

// The JSON that passes between Argo CD and the plugin, defined here so that the strata binary
// does not link Argo CD's Go packages (their kubectl dependencies cost tens of milliseconds of
// package initialization on every `strata cmp generate`). contract_test.go checks both types
// against Argo CD's own, in both directions.

// appParameter is one item of ARGOCD_APP_PARAMETERS: Argo CD's
// v1alpha1.ApplicationSourcePluginParameter as it marshals it ({"name", "string", "map",
// "array"}). A "map" or "array" key that is present counts even when empty, as in Argo CD.
type appParameter struct {
	Name     string
	String   *string
	Map      map[string]string
	Array    []string
	HasMap   bool
	HasArray bool
}

// UnmarshalJSON reads one parameter, telling an absent "map"/"array" from an empty one.
func (p *appParameter) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*p = appParameter{}
	if v, ok := raw["name"]; ok {
		if err := json.Unmarshal(v, &p.Name); err != nil {
			return fmt.Errorf("name: %w", err)
		}
	}
	if v, ok := raw["string"]; ok {
		if err := json.Unmarshal(v, &p.String); err != nil {
			return fmt.Errorf("parameter %q: string: %w", p.Name, err)
		}
	}
	if v, ok := raw["map"]; ok {
		p.HasMap = true
		if err := json.Unmarshal(v, &p.Map); err != nil {
			return fmt.Errorf("parameter %q: map: %w", p.Name, err)
		}
	}
	if v, ok := raw["array"]; ok {
		p.HasArray = true
		if err := json.Unmarshal(v, &p.Array); err != nil {
			return fmt.Errorf("parameter %q: array: %w", p.Name, err)
		}
	}
	return nil
}

// parameterAnnouncement is one item of the list `strata cmp parameters` prints: Argo CD's
// reposerver/apiclient.ParameterAnnouncement, with its JSON names.
type parameterAnnouncement struct {
	Name           string            `json:"name,omitempty"`
	Title          string            `json:"title,omitempty"`
	Tooltip        string            `json:"tooltip,omitempty"`
	Required       bool              `json:"required,omitempty"`
	ItemType       string            `json:"itemType,omitempty"`
	CollectionType string            `json:"collectionType,omitempty"`
	String         string            `json:"string,omitempty"`
	Array          []string          `json:"array,omitempty"`
	Map            map[string]string `json:"map,omitempty"`
}
