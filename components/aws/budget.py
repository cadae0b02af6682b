"""A monthly cost budget per environment with alerts on actual and forecast spend, and anomaly detection."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
from pydantic import Field, field_validator, model_validator

from components.aws.policy_documents import document
from components.base import AwsContext, ComponentArgs, StrInput, child_options, named_tags

# Pragmatic address syntax (what SNS and Budgets accept), not full RFC 5322.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)

#: AWS Budgets limits: notifications per budget, and e-mail subscribers per notification.
MAX_NOTIFICATIONS = 10
MAX_EMAILS_PER_NOTIFICATION = 10


class BudgetArgs(ComponentArgs):
    """Inputs of :class:`Budget`."""

    context: AwsContext
    """Account the budget and anomaly subscription belong to. Required."""
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^:\\]+$")
    """Budget name, unique in the account, e.g. ``keel-prod-monthly``. Required."""
    monthly_limit_usd: float = Field(gt=0)
    """Monthly cost limit in USD. Required."""
    cost_tag_key: str = Field(min_length=1, max_length=128, pattern=r"^[\w .:/=+@-]+$")
    """User-defined cost allocation tag that marks this environment's resources, e.g. ``environment``. It must
    be activated as a cost allocation tag in the Billing console or nothing is counted. Required."""
    cost_tag_value: str = Field(min_length=1, max_length=256, pattern=r"^[\w .:/=+@-]+$")
    """Value of ``cost_tag_key`` for this environment, e.g. ``prod``. Required."""
    actual_thresholds_pct: tuple[float, ...] = (80.0, 100.0)
    """Alert when actual spend passes these percentages of the limit. Default: 80 and 100."""
    forecast_thresholds_pct: tuple[float, ...] = (100.0,)
    """Alert when forecast month-end spend passes these percentages of the limit. Default: 100."""
    emails: tuple[str, ...] = Field(min_length=1)
    """Addresses subscribed to the alert topic (each must confirm the SNS subscription e-mail once). Required,
    at least one."""
    email_budget_alerts_directly: bool = True
    """Also send budget alerts straight to ``emails`` (at most 10), not only through the topic: budget
    e-mails need no confirmation and do not depend on the topic's key policy, so a money alert has two
    independent paths. Confirmed topic subscribers then get budget alerts twice. Default: ``True``."""
    anomaly_detection: bool = False
    """Create a Cost Anomaly Detection monitor scoped to the cost tag and an immediate alert subscription
    (prod). Default: ``False``."""
    anomaly_threshold_usd: float = Field(default=100.0, gt=0)
    """Alert on anomalies whose total impact is at least this many USD. Default: 100."""
    notifications_key_arn: StrInput
    """ARN of the KMS key (purpose ``notifications``) encrypting the topic; its key policy must let
    budgets.amazonaws.com and costalerts.amazonaws.com use it (``EncryptionKeys`` does). Required."""
    tags: Mapping[str, str]
    """Environment tags applied to every taggable resource. Required."""

    @field_validator("actual_thresholds_pct", "forecast_thresholds_pct")
    @classmethod
    def _thresholds(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        bad = [t for t in value if not 0 < t <= 1000]
        if bad:
            raise ValueError(
                f"thresholds are percentages of the limit in (0, 1000], got {list(value)} (bad: {bad})"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"thresholds must not repeat, got {list(value)}")
        return value

    @field_validator("cost_tag_key")
    @classmethod
    def _user_tag(cls, value: str) -> str:
        if value.startswith("aws:"):
            raise ValueError(f"cost_tag_key must be a user-defined tag, not an 'aws:' one, got {value!r}")
        return value

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [e for e in value if not _EMAIL.match(e)]
        if bad:
            raise ValueError(f"emails must be e-mail addresses like ops@example.com, got invalid {bad}")
        lowered = [e.lower() for e in value]
        if len(set(lowered)) != len(lowered):
            raise ValueError(f"emails must not repeat, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _limits(self) -> BudgetArgs:
        count = len(self.actual_thresholds_pct) + len(self.forecast_thresholds_pct)
        if count == 0 or count > MAX_NOTIFICATIONS:
            raise ValueError(
                f"actual_thresholds_pct and forecast_thresholds_pct together must give 1-{MAX_NOTIFICATIONS} "
                f"notifications (AWS Budgets limit), got {count}"
            )
        if self.email_budget_alerts_directly and len(self.emails) > MAX_EMAILS_PER_NOTIFICATION:
            raise ValueError(
                f"emails: AWS Budgets sends to at most {MAX_EMAILS_PER_NOTIFICATION} addresses per "
                f"notification, got {len(self.emails)}; set email_budget_alerts_directly=False to alert "
                "through the topic only"
            )
        return self

    @property
    def cost_filter_value(self) -> str:
        """The Budgets ``TagKeyValue`` filter value, ``user:<key>$<value>`` (a user-defined cost tag)."""
        return f"user:{self.cost_tag_key}${self.cost_tag_value}"


class Budget(pulumi.ComponentResource):
    """Monthly COST budget filtered to the environment's cost tag, alerting to a KMS-encrypted SNS topic.

    With ``anomaly_detection`` it adds a CUSTOM Cost Anomaly Detection monitor on the same tag (not the
    account-wide DIMENSIONAL/SERVICE monitor, which AWS allows only once per account and which would mix the
    environments sharing an account) and an IMMEDIATE subscription to the topic (IMMEDIATE accepts only SNS).
    """

    budget_name: pulumi.Output[str]
    """Name of the budget."""
    topic_arn: pulumi.Output[str]
    """ARN of the alert topic; other alarms of the environment may publish to it too."""

    def __init__(self, name: str, args: BudgetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("keel:aws:Budget", name, None, opts)
        ctx = args.context
        topic = aws.sns.Topic(
            f"{name}-topic",
            display_name=f"{args.name} cost alerts",
            kms_master_key_id=args.notifications_key_arn,
            tags=named_tags(args.tags, f"{args.name}-alerts"),
            opts=child_options(self),
        )
        topic_policy = aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=document(
                [
                    {
                        "Sid": "AwsBudgetsPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": "budgets.amazonaws.com"},
                        "Action": "SNS:Publish",
                        "Resource": topic.arn,
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": ctx.account_id},
                            "ArnLike": {"aws:SourceArn": f"arn:{ctx.partition}:budgets::{ctx.account_id}:*"},
                        },
                    },
                    {
                        "Sid": "CostAnomalyDetectionPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": "costalerts.amazonaws.com"},
                        "Action": "SNS:Publish",
                        "Resource": topic.arn,
                        "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
                    },
                ]
            ),
            opts=child_options(self),
        )
        for email in args.emails:
            aws.sns.TopicSubscription(
                f"{name}-email-{_slug(email)}",
                topic=topic.arn,
                protocol="email",
                endpoint=email,
                opts=child_options(self),
            )

        direct_emails = list(args.emails) if args.email_budget_alerts_directly else None
        notifications = [
            aws.budgets.BudgetNotificationArgs(
                notification_type=kind,
                comparison_operator="GREATER_THAN",
                threshold=threshold,
                threshold_type="PERCENTAGE",
                subscriber_sns_topic_arns=[topic.arn],
                subscriber_email_addresses=direct_emails,
            )
            for kind, thresholds in (
                ("ACTUAL", args.actual_thresholds_pct),
                ("FORECASTED", args.forecast_thresholds_pct),
            )
            for threshold in thresholds
        ]
        budget = aws.budgets.Budget(
            f"{name}-budget",
            name=args.name,
            account_id=ctx.account_id,
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=f"{args.monthly_limit_usd:.2f}",
            limit_unit="USD",
            cost_filters=[
                aws.budgets.BudgetCostFilterArgs(name="TagKeyValue", values=[args.cost_filter_value])
            ],
            notifications=notifications,
            tags=named_tags(args.tags, args.name),
            # Budgets must be allowed to publish before the first alert can be delivered.
            opts=child_options(self, depends_on=[topic_policy]),
        )

        if args.anomaly_detection:
            monitor = aws.costexplorer.AnomalyMonitor(
                f"{name}-anomaly-monitor",
                name=f"{args.name}-anomalies",
                monitor_type="CUSTOM",
                # Shaped as Cost Explorer echoes it back (null siblings), so the JSON shows no diff each run.
                monitor_specification=json.dumps(
                    {
                        "And": None,
                        "CostCategories": None,
                        "Dimensions": None,
                        "Not": None,
                        "Or": None,
                        "Tags": {
                            "Key": args.cost_tag_key,
                            "MatchOptions": None,
                            "Values": [args.cost_tag_value],
                        },
                    }
                ),
                tags=named_tags(args.tags, f"{args.name}-anomalies"),
                opts=child_options(self),
            )
            aws.costexplorer.AnomalySubscription(
                f"{name}-anomaly-subscription",
                name=f"{args.name}-anomalies",
                account_id=ctx.account_id,
                frequency="IMMEDIATE",
                monitor_arn_lists=[monitor.arn],
                subscribers=[
                    aws.costexplorer.AnomalySubscriptionSubscriberArgs(type="SNS", address=topic.arn)
                ],
                threshold_expression=aws.costexplorer.AnomalySubscriptionThresholdExpressionArgs(
                    dimension=aws.costexplorer.AnomalySubscriptionThresholdExpressionDimensionArgs(
                        key="ANOMALY_TOTAL_IMPACT_ABSOLUTE",
                        match_options=["GREATER_THAN_OR_EQUAL"],
                        values=[f"{args.anomaly_threshold_usd:g}"],
                    )
                ),
                tags=named_tags(args.tags, f"{args.name}-anomalies"),
                opts=child_options(self, depends_on=[topic_policy]),
            )

        self.budget_name = budget.name
        self.topic_arn = topic.arn
        self.register_outputs({"budget_name": self.budget_name, "topic_arn": self.topic_arn})


def _slug(email: str) -> str:
    """A stable logical-name fragment per address: reordering ``emails`` never replaces a subscription."""
    return re.sub(r"[^a-z0-9]+", "-", email.lower()).strip("-")
