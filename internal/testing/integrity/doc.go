// Package integrity is a test harness: it checks, on the registry directly, that what a
// repository stores is whole — every tag resolves to a manifest whose bytes match its digest,
// every manifest an index names is there, every blob a manifest names is there with its size
// and digest — and, for a stages storage, that no stage digest has two tags. The fault campaign
// runs it after every faulty run: a run may fail, it may never leave a broken state.
//
// Test-only: product packages never import it.
package integrity
