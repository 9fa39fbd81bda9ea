// Added to github.com/kyverno/chainsaw/pkg/runner/internal at build time (go build -overlay).
// Go 1.26 added ModulePath to testing's private testDeps interface; chainsaw v0.2.12, the
// newest release, predates it and does not compile without this one method.

package internal

func (*TestDeps) ModulePath() string { return "" }
