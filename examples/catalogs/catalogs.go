// Package catalogs holds the catalogs of real platforms that ship with scrip.
// wzrd-studio.yaml is the bundled demo catalog.
package catalogs

import (
	"embed"

	"github.com/scriphq/scrip/catalog"
)

// FS holds every example catalog file.
//
//go:embed *.yaml
var FS embed.FS

// Demo is the file name of the bundled demo catalog in FS.
const Demo = "wzrd-studio.yaml"

// LoadDemo parses the bundled demo catalog.
func LoadDemo() (*catalog.Catalog, error) {
	data, err := FS.ReadFile(Demo)
	if err != nil {
		return nil, err
	}
	return catalog.Parse(data, Demo)
}
