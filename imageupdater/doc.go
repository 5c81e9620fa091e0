// Package imageupdater is a controller that watches bundle repositories for new tags and moves
// Argo CD Applications to them.
package imageupdater
