// Package ship runs `strata bundle publish`: it takes the images of a build report, or builds
// them first (stages already stored are reused), and publishes the project's bundle with them.
//
// build and bundle never import each other; ship is where the two steps meet, so that the
// command only parses flags.
package ship
