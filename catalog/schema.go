package catalog

import _ "embed"

// Schema is the JSON Schema of the catalog format, for editors (YAML
// language servers accept it). Load checks more than the schema can say:
// expressions, table completeness, references between sections.
//
//go:embed schema.json
var Schema []byte
