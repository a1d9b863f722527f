"""The fake CRMs checked once against the vendors' own clients, so they cannot drift into a
private dialect: hubspot-api-client for HubSpot, simple-salesforce for Salesforce."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from requests.adapters import HTTPAdapter

from scripts.fake_hubspot import FakeHubSpot
from scripts.fake_salesforce import FakeSalesforce


@pytest.fixture
def hubspot_fake() -> Iterator[FakeHubSpot]:
    server = FakeHubSpot().start()
    yield server
    server.stop()


@pytest.fixture
def salesforce_fake() -> Iterator[FakeSalesforce]:
    server = FakeSalesforce().start()
    yield server
    server.stop()


def hubspot_client(fake: FakeHubSpot, token: str | None = None) -> Any:
    from hubspot import HubSpot

    # Each API the client hands out is built from these settings: ``host`` aims them all.
    return HubSpot(access_token=token or fake.token, host=fake.base_url)


def test_fake_hubspot_speaks_what_hubspot_api_client_expects(hubspot_fake: FakeHubSpot) -> None:
    from hubspot.crm.contacts import (
        Filter,
        FilterGroup,
        PublicObjectSearchRequest,
        SimplePublicObjectInputForCreate,
    )
    from hubspot.crm.contacts.exceptions import ApiException
    from hubspot.crm.objects.communications import (
        SimplePublicObjectInputForCreate as CommunicationInput,
    )

    client = hubspot_client(hubspot_fake)
    created = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"phone": "+12025550100"})
    )
    assert created.id and created.properties["phone"] == "+12025550100"
    search = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(
                filters=[Filter(property_name="phone", operator="EQ", value="+12025550100")]
            )
        ],
        limit=1,
    )
    found = client.crm.contacts.search_api.do_search(public_object_search_request=search)
    assert found.total == 1 and found.results[0].id == created.id
    communication = client.crm.objects.communications.basic_api.create(
        CommunicationInput(
            properties={
                "hs_communication_channel_type": "SMS",
                "hs_communication_logged_from": "CRM",
                "hs_communication_body": "hello",
                "hs_timestamp": "2026-11-23T10:00:00Z",
            },
            associations=[
                {
                    "to": {"id": created.id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 81}],
                }
            ],
        )
    )
    assert communication.properties["hs_communication_body"] == "hello"
    assert hubspot_fake.communications()[0]["associations"] == [created.id]
    got = client.crm.contacts.basic_api.get_by_id(created.id)
    assert got.id == created.id
    with pytest.raises(ApiException) as denied:
        hubspot_client(hubspot_fake, "wrong").crm.contacts.basic_api.get_by_id(created.id)
    assert denied.value.status == 401
    hubspot_fake.set_mode("throttle", retry_after=2)
    with pytest.raises(ApiException) as throttled:
        client.crm.contacts.basic_api.get_by_id(created.id)
    assert throttled.value.status == 429
    assert throttled.value.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "2000"


class _PlainHttp(HTTPAdapter):
    """simple-salesforce always builds https:// URLs; the local fake speaks plain HTTP."""

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        request.url = request.url.replace("https://", "http://", 1)
        return super().send(request, **kwargs)


def salesforce_client(fake: FakeSalesforce, token: str | None = None) -> Any:
    from simple_salesforce import Salesforce

    session = requests.Session()
    session.mount("https://", _PlainHttp())
    return Salesforce(
        instance_url=fake.base_url,
        session_id=token or fake.token,
        session=session,
        version="59.0",
    )


def test_fake_salesforce_speaks_what_simple_salesforce_expects(
    salesforce_fake: FakeSalesforce,
) -> None:
    from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceRefusedRequest

    sf = salesforce_client(salesforce_fake)
    lead = sf.Lead.create(
        {"LastName": "+12025550100", "Company": "Unknown", "Phone": "+12025550100"}
    )
    assert lead["success"] and lead["id"].startswith("00Q")
    found = sf.query("SELECT Id FROM Lead WHERE Phone = '+12025550100' LIMIT 1")
    assert found["totalSize"] == 1 and found["records"][0]["Id"] == lead["id"]
    assert sf.query("SELECT Id FROM Contact WHERE Phone = '+12025550100'")["totalSize"] == 0
    fields = {"Subject": "SMS received", "WhoId": lead["id"], "Status": "Completed"}
    assert sf.Task.upsert("Switchboard_Message_Id__c/msg_1", fields) == 201
    assert sf.Task.upsert("Switchboard_Message_Id__c/msg_1", fields) == 200  # no second Task
    assert len(salesforce_fake.of("Task")) == 1
    assert sf.Lead.update(lead["id"], {"Switchboard_SMS_Opt_Out__c": True}) == 204
    assert sf.Lead.get(lead["id"])["Switchboard_SMS_Opt_Out__c"] is True
    composite = sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": False,
            "compositeRequest": [
                {
                    "method": "GET",
                    "url": "/services/data/v59.0/query?q="
                    + quote("SELECT Id FROM Lead WHERE Phone = '+12025550100'"),
                    "referenceId": "Lead",
                }
            ],
        },
    )
    assert composite["compositeResponse"][0]["body"]["records"][0]["Id"] == lead["id"]
    with pytest.raises(SalesforceExpiredSession):
        salesforce_client(salesforce_fake, "wrong").query("SELECT Id FROM Lead")
    salesforce_fake.set_mode("throttle")
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Lead")
    assert "REQUEST_LIMIT_EXCEEDED" in str(refused.value)
