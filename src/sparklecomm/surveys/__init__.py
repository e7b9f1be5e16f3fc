"""Customer satisfaction surveys (CSAT): answers by phone, by link and through the API."""

from sparklecomm.surveys.links import LinkSigner, SurveyLink, SurveyLinkExpired
from sparklecomm.surveys.service import SurveyService, response_payload

__all__ = ["LinkSigner", "SurveyLink", "SurveyLinkExpired", "SurveyService", "response_payload"]
