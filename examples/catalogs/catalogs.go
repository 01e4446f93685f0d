// Package catalogs holds the catalogs of real platforms that ship with scrip.
// wzrd-studio.yaml is the bundled demo catalog.
package catalogs

import "embed"

// FS holds every example catalog file.
//
//go:embed *.yaml
var FS embed.FS

// Demo is the file name of the bundled demo catalog in FS.
const Demo = "wzrd-studio.yaml"
