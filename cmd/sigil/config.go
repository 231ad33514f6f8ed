package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// applyConfig sets a command's flags from a YAML file whose keys are the
// flag names (listen: 0.0.0.0:8443, tls-name: [ca.internal], ...). Flags
// given on the command line or in SIGIL_* variables win: file < env < flags.
// Unknown keys are errors, and secrets do not belong in the file: the KEK
// comes from kek-file, SIGIL_KEK or SIGIL_KEK_PASSPHRASE.
func applyConfig(cmd *cobra.Command, path string, fromEnv map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if len(data) > 1<<20 {
		return fmt.Errorf("config %s is over 1 MiB", path)
	}
	var doc map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for key, v := range doc {
		fl := cmd.Flags().Lookup(key)
		if fl == nil || key == "config" || key == "help" {
			return fmt.Errorf("config %s: unknown key %q (keys are the flag names of sigil %s)", path, key, cmd.Name())
		}
		if fl.Changed || fromEnv[key] {
			continue
		}
		values := []any{v}
		if list, ok := v.([]any); ok {
			values = list
		}
		for _, item := range values {
			switch item.(type) {
			case map[string]any, []any, nil:
				return fmt.Errorf("config %s: %s: want a scalar or a list of scalars", path, key)
			}
			if err := fl.Value.Set(fmt.Sprint(item)); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, key, err)
			}
		}
	}
	return nil
}
