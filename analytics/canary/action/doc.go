// Package action turns the canary judge's verdicts (analytics/canary) into
// what deployment tools act on (issue 20, item 3):
//
//   - Rollbacker posts one rollback request per failed canary to a
//     configured webhook, with an Idempotency-Key header, retrying until
//     the receiver answers 2xx; a Ledger remembers which canaries were
//     rolled back, so a restarted analyzer does not ask twice (FileLedger
//     keeps it on disk).
//   - Board holds the latest verdict of every running canary and serves
//     it over HTTP: a JSON document for Argo Rollouts' web metric provider
//     (jsonPath "{$.outcome}", successCondition result == "pass",
//     failureCondition result == "fail"), and Flagger's webhook contract
//     (a rollback hook that answers 200 when the canary failed, a confirm
//     hook that answers 200 when it passed).
//
// The payloads are documented on RollbackRequest and WebVerdict and in
// docs/ARCHITECTURE.md ("Canary judge").
package action
