"""The job vocabulary, declared once: job types, misfire and concurrency
policies, a job's defaults, execution statuses, alert kinds and alert
delivery states. The API's schema and document, the database model, the codec
(common/message.py) and the processes all take them from here."""

ATLEAST_ONCE = "ATLEAST_ONCE"
ATMOST_ONCE = "ATMOST_ONCE"
JOB_TYPES = (ATLEAST_ONCE, ATMOST_ONCE)
MISFIRE_SKIP = "skip"
MISFIRE_FIRE_ONCE = "fire_once"
MISFIRE_POLICIES = (MISFIRE_SKIP, MISFIRE_FIRE_ONCE)
CONCURRENCY_ALLOW = "allow"
CONCURRENCY_FORBID = "forbid"
CONCURRENCY_POLICIES = (CONCURRENCY_ALLOW, CONCURRENCY_FORBID)
METHODS = ("POST", "GET", "PUT", "PATCH", "DELETE")

# A job's defaults: JobSpec, its JSON (fields holding them are left out), the
# API's schema and the database model.
DEFAULT_TIMEZONE = "UTC"
DEFAULT_METHOD = "POST"
DEFAULT_TYPE = ATLEAST_ONCE
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_BACKOFF_MS = 1000
DEFAULT_MISFIRE = MISFIRE_SKIP
DEFAULT_CONCURRENCY = CONCURRENCY_ALLOW
DEFAULT_SUCCESS = ((200, 299),)   # inclusive HTTP status ranges
# A spec's timeout when its JSON has none (the API always writes the job's
# own, JOBSCHED_DEFAULT_TIMEOUT_MS if it gave none).
SPEC_TIMEOUT_MS = 10_000

# An execution row's status (one row per attempt).
SUCCESS = "SUCCESS"
FAILED = "FAILED"
SKIPPED = "SKIPPED"       # fires passed over (misfire, overlap, paused): a record, no call
EXECUTION_STATUSES = (SUCCESS, FAILED, SKIPPED)

# Alert kinds: of a job, then of the system.
EXECUTION_FAILED = "execution_failed"   # a fire failed for good
RECOVERED = "recovered"                 # a success after failures
AUTO_DISABLED = "auto_disabled"         # autoDisableAfter failures in a row
BACKLOG = "backlog"                     # the oldest ready fire waits too long
NO_LEADER = "no_leader"                 # no dispatcher holds the lease
ALERT_KINDS = (EXECUTION_FAILED, RECOVERED, AUTO_DISABLED, BACKLOG, NO_LEADER)

# An alert's webhook delivery.
DELIVERY_NONE = "none"              # no webhook to call
DELIVERY_PENDING = "pending"
DELIVERY_DELIVERED = "delivered"
DELIVERY_FAILED = "failed"          # gave up after JOBSCHED_WEBHOOK_ATTEMPTS
DELIVERY_STATES = (DELIVERY_NONE, DELIVERY_PENDING, DELIVERY_DELIVERED, DELIVERY_FAILED)
