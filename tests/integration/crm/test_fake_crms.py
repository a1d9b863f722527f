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


def test_fake_hubspot_batches_and_limits_speak_what_hubspot_api_client_expects(
    hubspot_fake: FakeHubSpot,
) -> None:
    from hubspot.crm.contacts import (
        BatchInputSimplePublicObjectBatchInput,
        BatchInputSimplePublicObjectBatchInputForCreate,
        BatchReadInputSimplePublicObjectId,
        Filter,
        FilterGroup,
        PublicObjectSearchRequest,
        SimplePublicObjectBatchInput,
        SimplePublicObjectBatchInputForCreate,
        SimplePublicObjectId,
    )
    from hubspot.crm.contacts.exceptions import ApiException
    from hubspot.crm.objects.communications import (
        BatchInputSimplePublicObjectBatchInputForCreate as CommunicationsInput,
    )
    from hubspot.crm.objects.communications import (
        SimplePublicObjectBatchInputForCreate as CommunicationInput,
    )

    client = hubspot_client(hubspot_fake)
    phones = ["+12025550111", "+12025550112", "+12025550113"]
    created = client.crm.contacts.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[SimplePublicObjectBatchInputForCreate(properties={"phone": p}) for p in phones]
        )
    )
    assert created.status == "COMPLETE" and len(created.results) == 3
    ids = {r.properties["phone"]: r.id for r in created.results}
    search = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(filters=[Filter(property_name="phone", operator="IN", values=phones[:2])])
        ],
        limit=100,
    )
    found = client.crm.contacts.search_api.do_search(public_object_search_request=search)
    assert {r.id for r in found.results} == {ids[phones[0]], ids[phones[1]]}
    read = client.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=ids[phones[2]])], properties=["phone"]
        )
    )
    assert read.results[0].properties["phone"] == phones[2]
    # An update naming an id HubSpot does not have: 207, the good ones applied.
    updated = client.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(
                    id=ids[phones[0]], properties={"switchboard_sms_opt_out": "true"}
                ),
                SimplePublicObjectBatchInput(id="999999", properties={"phone": "x"}),
            ]
        )
    )
    assert updated.num_errors == 1 and updated.errors[0].context["ids"] == ["999999"]
    assert updated.errors[0].category == "OBJECT_NOT_FOUND"
    logged = client.crm.objects.communications.batch_api.create(
        CommunicationsInput(
            inputs=[
                CommunicationInput(
                    properties={
                        "hs_communication_channel_type": "SMS",
                        "hs_communication_body": "hi",
                        "switchboard_message_id": "msg_1",
                    },
                    associations=[
                        {
                            "to": {"id": ids[phones[0]]},
                            "types": [
                                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 81}
                            ],
                        }
                    ],
                )
            ]
        )
    )
    assert logged.results[0].properties["switchboard_message_id"] == "msg_1"
    assert hubspot_fake.communications()[0]["associations"] == [ids[phones[0]]]
    with pytest.raises(ApiException) as too_big:
        client.crm.contacts.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    SimplePublicObjectBatchInputForCreate(properties={"phone": f"+1{n}"})
                    for n in range(101)
                ]
            )
        )
    assert too_big.value.status == 400
    # The limits: five searches a second, then the window of calls.
    with pytest.raises(ApiException) as searches:
        for _ in range(6):
            client.crm.contacts.search_api.do_search(public_object_search_request=search)
    assert searches.value.status == 429 and '"SECONDLY"' in searches.value.body
    hubspot_fake.limit(calls=hubspot_fake.calls_in_window() + 1, daily=250_000)
    answer = client.crm.contacts.basic_api.get_by_id_with_http_info(ids[phones[0]])
    assert answer[2]["X-HubSpot-RateLimit-Remaining"] == "0"
    assert answer[2]["X-HubSpot-RateLimit-Daily"] == "250000"
    with pytest.raises(ApiException) as window:
        client.crm.contacts.basic_api.get_by_id(ids[phones[0]])
    assert window.value.status == 429 and '"TEN_SECONDLY_ROLLING"' in window.value.body
    assert window.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_fake_salesforce_collections_and_allowance_speak_what_simple_salesforce_expects(
    salesforce_fake: FakeSalesforce,
) -> None:
    from simple_salesforce.exceptions import SalesforceRefusedRequest

    sf = salesforce_client(salesforce_fake)
    phones = ["+12025550121", "+12025550122"]
    leads = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Lead"}, "LastName": p, "Company": "U", "Phone": p}
                for p in phones
            ]
            + [{"attributes": {"type": "Lead"}, "Phone": "+12025550123"}],  # no LastName
        },
    )
    assert [r["success"] for r in leads] == [True, True, False]
    assert leads[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    listed = ", ".join(f"'{p}'" for p in phones)
    found = sf.query(f"SELECT Id, Phone FROM Lead WHERE Phone IN ({listed})")
    assert {r["Phone"] for r in found["records"]} == set(phones)
    tasks = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Task"}, "Switchboard_Message_Id__c": "msg_1",
             "WhoId": leads[0]["id"], "Subject": "SMS received"},
            {"attributes": {"type": "Task"}, "Switchboard_Message_Id__c": "msg_2",
             "WhoId": "00Q000000000000999", "Subject": "SMS received"},
        ],
    }  # fmt: skip
    upserted = sf.restful(
        "composite/sobjects/Task/Switchboard_Message_Id__c", method="PATCH", json=tasks
    )
    assert upserted[0]["success"] and upserted[0]["created"] is True
    assert upserted[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    again = sf.restful(
        "composite/sobjects/Task/Switchboard_Message_Id__c", method="PATCH", json=tasks
    )
    assert again[0]["created"] is False and len(salesforce_fake.of("Task")) == 1
    changed = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Lead"}, "id": leads[1]["id"],
                 "Switchboard_SMS_Opt_Out__c": True},
            ],
        },
    )  # fmt: skip
    assert changed[0]["success"] and sf.Lead.get(leads[1]["id"])["Switchboard_SMS_Opt_Out__c"]
    # The allowance, as simple-salesforce reads it off every answer, then refused past it.
    usage = sf.api_usage["api-usage"]  # as of its last call (the Lead.get counts apart)
    assert (usage.used, usage.total) == (salesforce_fake.used - 1, 100_000)
    salesforce_fake.allowance = salesforce_fake.used
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Lead")
    assert "REQUEST_LIMIT_EXCEEDED" in str(refused.value)
