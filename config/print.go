package config

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/auditlog/auditlog/domain"
)

// Print writes the effective configuration of scope, one setting a line:
// its name, value and where the value came from. Secrets show as "(set)"
// or "(unset)", and passwords in URLs are redacted.
func (c *Config) Print(w io.Writer, scope Scope) error {
	for _, s := range Settings {
		if s.Scope > scope {
			continue
		}
		if s.set == nil { // DATABASE_URL_<REGION>
			for _, r := range domain.Regions {
				if u := c.RegionDatabaseURLs[r]; u != "" {
					if _, err := fmt.Fprintf(w, "%-28s %s (environment)\n", "DATABASE_URL_"+string(r), redact(u)); err != nil {
						return err
					}
				}
			}
			continue
		}
		v, src := c.text[s.Name()], c.sources[s.Name()]
		switch {
		case s.Secret && v != "":
			v = "(set) (" + src + ")"
		case v == "":
			v = "(unset)"
		case s.URL:
			v = redact(v) + " (" + src + ")"
		default:
			v += " (" + src + ")"
		}
		if _, err := fmt.Fprintf(w, "%-28s %s\n", s.Name(), v); err != nil {
			return err
		}
	}
	return nil
}

func redact(v string) string {
	if u, err := url.Parse(v); err == nil && u.User != nil {
		return u.Redacted()
	}
	return v
}

// Markdown writes the reference tables of the settings, one per scope, as
// docs/operations.md shows them.
func Markdown(w io.Writer) error {
	var b strings.Builder
	for _, scope := range []Scope{Shared, Serve} {
		if scope == Shared {
			b.WriteString("### Shared by serve, rebuild, reconcile and partitions\n\n")
		} else {
			b.WriteString("\n### serve only\n\n")
		}
		b.WriteString("| flag | environment | default | meaning |\n|---|---|---|---|\n")
		for _, s := range Settings {
			if s.Scope != scope {
				continue
			}
			flag, env, def := "—", "—", "none"
			if s.Flag != "" {
				flag = "`--" + s.Flag + "`"
			}
			if s.Env != "" {
				env = "`" + s.Env + "`"
			}
			switch {
			case s.DocDefault != "":
				def = s.DocDefault
			case s.Default != "":
				def = "`" + s.Default + "`"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", flag, env, def, s.Meaning)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
