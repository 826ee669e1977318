"""Writes ``call_checks.jsonl``: hand-labelled cases for the deterministic tool-call checks.

Every case below is written out by hand, verdict included: ``accept`` is what a careful grader says
under the written specification of the checks (closed schemas, strict integers, the matchers, the
documented date rules, multiset matching with ``after``, no repeated successful call). Nothing here
computes a label, and nothing here imports ``trustee_env.checks``: the point is to catch that code
being wrong. Run ``python tests/data/make_call_checks.py`` to rewrite the JSONL file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "call_checks.jsonl"

S: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}
BOOL: dict[str, Any] = {"type": "boolean"}


def obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema (the way tool authors write them: usually without additionalProperties)."""
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    out.update(extra)
    return out


def enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def arr(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


def tool(name: str, description: str, parameters: dict[str, Any], read_only: bool = False) -> dict[str, Any]:
    return {"name": name, "description": description, "parameters": parameters, "read_only": read_only}


ADDRESS = obj({"street": S, "city": S, "postal_code": S, "country": S}, ["street", "city"])

TOOLS: dict[str, dict[str, Any]] = {
    t["name"]: t
    for t in [
        tool(
            "weather_get",
            "Current weather for a city.",
            obj({"city": S, "units": enum("celsius", "fahrenheit"), "date": S}, ["city"]),
            True,
        ),
        tool(
            "weather_forecast",
            "Daily forecast for the next days.",
            obj({"city": S, "days": {"type": "integer", "minimum": 1, "maximum": 14}}, ["city", "days"]),
            True,
        ),
        tool(
            "flights_search",
            "Search flights between two airports.",
            obj(
                {
                    "origin": S,
                    "destination": S,
                    "departure_date": {"type": "string", "description": "Departure date."},
                    "passengers": obj({"adults": INT, "children": INT}, ["adults"]),
                    "cabin": enum("economy", "premium_economy", "business", "first"),
                    "max_stops": INT,
                    "nonstop": BOOL,
                },
                ["origin", "destination", "departure_date"],
            ),
            True,
        ),
        tool(
            "flight_book",
            "Book a flight found by flights_search.",
            obj(
                {
                    "flight_id": S,
                    "passengers": arr(
                        obj({"first_name": S, "last_name": S, "birth_date": S}, ["first_name", "last_name"]),
                        minItems=1,
                    ),
                    "seat_preference": enum("window", "aisle", "middle"),
                },
                ["flight_id", "passengers"],
            ),
        ),
        tool(
            "hotel_search",
            "Search hotels in a city for given dates.",
            obj(
                {
                    "city": S,
                    "check_in": S,
                    "check_out": S,
                    "guests": {"type": "integer", "minimum": 1},
                    "max_price": NUM,
                    "amenities": arr(S, uniqueItems=True),
                },
                ["city", "check_in", "check_out", "guests"],
            ),
            True,
        ),
        tool(
            "hotel_book",
            "Book a room in a hotel.",
            obj(
                {"hotel_id": S, "room_type": enum("single", "double", "suite"), "guests": INT},
                ["hotel_id", "room_type", "guests"],
            ),
        ),
        tool(
            "bank_get_balance",
            "Balance of one of the user's accounts.",
            obj({"account_id": S}, ["account_id"]),
            True,
        ),
        tool(
            "bank_list_transactions",
            "Transactions of an account between two dates.",
            obj({"account_id": S, "start_date": S, "end_date": S, "limit": INT}, ["account_id"]),
            True,
        ),
        tool(
            "bank_transfer",
            "Transfer money between accounts.",
            obj(
                {
                    "from_account": S,
                    "to_account": S,
                    "amount": {"type": "number", "exclusiveMinimum": 0},
                    "currency": enum("USD", "EUR", "GBP", "JPY", "AUD"),
                    "memo": S,
                    "scheduled_date": S,
                },
                ["from_account", "to_account", "amount", "currency"],
            ),
        ),
        tool(
            "calendar_create_event",
            "Create a calendar event.",
            obj(
                {
                    "title": S,
                    "start": {"type": "string", "description": "Start date-time."},
                    "end": S,
                    "attendees": arr(S, uniqueItems=True),
                    "location": S,
                    "reminder": obj({"minutes_before": INT, "method": enum("email", "popup")}, ["minutes_before"]),
                    "all_day": BOOL,
                },
                ["title", "start"],
            ),
        ),
        tool(
            "calendar_list_events",
            "List the events of one day.",
            obj({"date": S}, ["date"]),
            True,
        ),
        tool(
            "orders_search",
            "Find a customer's orders.",
            obj(
                {"customer_email": S, "status": enum("pending", "shipped", "delivered", "cancelled")},
                ["customer_email"],
            ),
            True,
        ),
        tool(
            "order_cancel",
            "Cancel an order.",
            obj({"order_id": S, "reason": enum("changed_mind", "found_cheaper", "damaged", "other")}, ["order_id"]),
        ),
        tool(
            "cart_add_item",
            "Add a product to the shopping cart.",
            obj(
                {
                    "product_id": S,
                    "quantity": {"type": "integer", "minimum": 1},
                    "options": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                ["product_id", "quantity"],
            ),
        ),
        tool(
            "product_search",
            "Search the product catalog.",
            obj(
                {
                    "query": S,
                    "category": enum("electronics", "computers", "books", "toys", "home"),
                    "max_price": NUM,
                    "sort": enum("relevance", "price_asc", "price_desc", "rating"),
                    "tags": arr(S),
                },
                ["query"],
            ),
            True,
        ),
        tool(
            "maps_directions",
            "Directions between two places.",
            obj(
                {
                    "origin": S,
                    "destination": S,
                    "mode": enum("driving", "walking", "transit", "bicycling"),
                    "waypoints": arr(S),
                    "avoid": arr(enum("tolls", "highways", "ferries"), uniqueItems=True),
                },
                ["origin", "destination"],
            ),
            True,
        ),
        tool(
            "maps_nearby",
            "Places near a point.",
            obj(
                {
                    "location": arr(NUM, minItems=2, maxItems=2, description="[latitude, longitude]"),
                    "radius_m": INT,
                    "place_type": S,
                },
                ["location"],
            ),
            True,
        ),
        tool(
            "message_send",
            "Send a short message to a contact.",
            obj(
                {"recipient": S, "body": S, "channel": enum("sms", "email", "whatsapp"), "urgent": BOOL},
                ["recipient", "body"],
            ),
        ),
        tool(
            "email_send",
            "Send an email.",
            obj({"to": arr(S, minItems=1), "subject": S, "body": S, "cc": arr(S)}, ["to", "subject", "body"]),
        ),
        tool(
            "currency_convert",
            "Convert an amount between currencies.",
            obj({"amount": NUM, "from_currency": S, "to_currency": S}, ["amount", "from_currency", "to_currency"]),
            True,
        ),
        tool(
            "translate_text",
            "Translate a text.",
            obj({"text": S, "target_language": S, "source_language": S}, ["text", "target_language"]),
            True,
        ),
        tool(
            "restaurant_reserve",
            "Reserve a table.",
            obj(
                {
                    "restaurant_id": S,
                    "date": S,
                    "time": S,
                    "party_size": {"type": "integer", "minimum": 1},
                    "special_requests": S,
                    "contact": obj({"name": S, "phone": S}, ["name", "phone"]),
                },
                ["restaurant_id", "date", "time", "party_size"],
            ),
        ),
        tool(
            "log_event",
            "Record an analytics event with free-form properties.",
            obj({"event": S, "properties": {"type": "object", "additionalProperties": True}}, ["event"]),
        ),
        tool(
            "crm_update_contact",
            "Update a CRM contact.",
            {
                "type": "object",
                "properties": {"contact_id": S, "email": S, "address": {"$ref": "#/$defs/address"}},
                "required": ["contact_id"],
                "$defs": {"address": ADDRESS},
            },
        ),
        tool(
            "crm.contacts.lookup",
            "Look up a CRM contact by email.",
            obj({"email": S}, ["email"]),
            True,
        ),
        tool("geo-code", "Coordinates of an address.", obj({"address": S}, ["address"]), True),
        tool(
            "stock_quote",
            "Latest quote for a ticker symbol.",
            obj({"symbol": S, "exchange": S}, ["symbol"]),
            True,
        ),
        tool(
            "music_play",
            "Play tracks in the given order.",
            obj({"tracks": arr(S, minItems=1), "shuffle": BOOL, "volume": INT}, ["tracks"]),
        ),
        tool(
            "recipe_search",
            "Find recipes using ingredients.",
            obj(
                {
                    "ingredients": arr(S),
                    "max_minutes": INT,
                    "diet": enum("none", "vegetarian", "vegan", "gluten_free"),
                },
                ["ingredients"],
            ),
            True,
        ),
        tool(
            "visa_requirements",
            "Visa rules for a traveller's nationality and destination.",
            obj({"nationality": S, "destination_country": S}, ["nationality", "destination_country"]),
            True,
        ),
        tool(
            "job_search",
            "Search job offers.",
            obj({"query": S, "location": S, "remote": BOOL}, ["query"]),
            True,
        ),
        tool(
            "thermostat_set",
            "Set a thermostat.",
            obj(
                {"device_id": S, "temperature": NUM, "mode": enum("heat", "cool", "auto", "off")},
                ["device_id", "temperature"],
            ),
        ),
        tool(
            "shipment_create",
            "Create a parcel shipment.",
            obj(
                {
                    "recipient": S,
                    "package": obj(
                        {
                            "weight_kg": NUM,
                            "dimensions": obj({"length_cm": NUM, "width_cm": NUM, "height_cm": NUM}),
                        },
                        ["weight_kg"],
                    ),
                },
                ["recipient", "package"],
            ),
        ),
        tool(
            "shipment_track",
            "Track a parcel; carrier-specific lookup keys may be passed as extra string arguments.",
            obj({"tracking_number": S}, ["tracking_number"], additionalProperties={"type": "string"}),
            True,
        ),
        tool(
            "web_search",
            "Web search; any extra engine option is passed through.",
            obj({"query": S}, ["query"], additionalProperties=True),
            True,
        ),
        tool(
            "ride_request",
            "Request a ride.",
            obj(
                {"pickup": S, "dropoff": S, "ride_type": enum("standard", "xl", "premium"), "passengers": INT},
                ["pickup", "dropoff"],
            ),
        ),
        tool(
            "cinema_book",
            "Book seats for a showtime.",
            obj(
                {"showtime_id": S, "seats": arr(INT, uniqueItems=True, minItems=1)},
                ["showtime_id", "seats"],
            ),
        ),
        tool(
            "loyalty_redeem",
            "Redeem loyalty points.",
            obj({"member_id": S, "points": INT}, ["member_id", "points"], additionalProperties=False),
        ),
    ]
}


def E(
    name: str,
    arguments: dict[str, Any],
    matchers: dict[str, str] | None = None,
    alternatives: dict[str, list[Any]] | None = None,
    after: list[int] | None = None,
) -> dict[str, Any]:
    """An expected call."""
    return {
        "name": name,
        "arguments": arguments,
        "matchers": matchers or {},
        "alternatives": alternatives or {},
        "after": after or [],
    }


def C(name: str, arguments: dict[str, Any], result: Any = None) -> dict[str, Any]:
    """A call the agent made (with the result the tool gave, when one matters)."""
    out: dict[str, Any] = {"name": name, "arguments": arguments}
    if result is not None:
        out["result"] = result
    return out


CASES: list[dict[str, Any]] = []


def case(
    cls: str, tools: list[str], expected: list[dict[str, Any]], calls: list[dict[str, Any]], accept: bool, note: str
) -> None:
    """Record one hand-labelled case; ``accept`` is the grader's verdict, written by hand."""
    CASES.append(
        {
            "class": cls,
            "tools": [TOOLS[name] for name in tools],
            "expected_calls": expected,
            "calls": calls,
            "accept": accept,
            "note": note,
        }
    )


# Common argument sets
PARIS = {"city": "Paris"}
FLIGHT = {"origin": "JFK", "destination": "LHR", "departure_date": "2024-06-10"}
HOTEL = {"city": "Lisbon", "check_in": "2024-07-01", "check_out": "2024-07-04", "guests": 2}
TRANSFER = {"from_account": "CHK-001", "to_account": "SAV-002", "amount": 250.0, "currency": "EUR"}
RESERVE = {"restaurant_id": "R-88", "date": "2024-05-20", "time": "19:30", "party_size": 4}
CONTACT = {"name": "Dana Lee", "phone": "+1 555 0100"}

# ---------------------------------------------------------------- correct
K = "correct"
case(K, ["weather_get"], [E("weather_get", PARIS)], [C("weather_get", PARIS)], True, "the one expected call, verbatim")
case(
    K,
    ["flights_search", "flight_book"],
    [E("flights_search", {**FLIGHT, "passengers": {"adults": 2}})],
    [C("flights_search", {**FLIGHT, "passengers": {"adults": 2}})],
    True,
    "flight search with nested passengers exactly as expected",
)
case(
    K,
    ["bank_transfer", "bank_get_balance"],
    [E("bank_transfer", TRANSFER, {"currency": "exact"})],
    [C("bank_transfer", TRANSFER)],
    True,
    "transfer with exact enum currency",
)
case(
    K,
    ["calendar_create_event"],
    [
        E(
            "calendar_create_event",
            {"title": "Design review", "start": "2024-03-12T10:00", "attendees": ["ana@x.com", "bo@x.com"]},
            {"attendees": "set"},
        )
    ],
    [
        C(
            "calendar_create_event",
            {"title": "Design review", "start": "2024-03-12T10:00", "attendees": ["ana@x.com", "bo@x.com"]},
        )
    ],
    True,
    "calendar event with attendee set",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Mom", "body": "x"}, {"body": "any"})],
    [C("message_send", {"recipient": "Mom", "body": "Landed safely, call you tonight."})],
    True,
    "free-text body under the any matcher",
)
case(K, ["hotel_search"], [E("hotel_search", HOTEL)], [C("hotel_search", HOTEL)], True, "hotel search verbatim")
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS), E("weather_forecast", {"city": "Paris", "days": 3})],
    [C("weather_get", PARIS), C("weather_forecast", {"city": "Paris", "days": 3})],
    True,
    "two expected calls, both made",
)
case(
    K,
    ["stock_quote"],
    [E("stock_quote", {"symbol": "AAPL"}, {"symbol": "exact"})],
    [C("stock_quote", {"symbol": "AAPL"})],
    True,
    "ticker exact",
)
case(
    K,
    ["thermostat_set"],
    [E("thermostat_set", {"device_id": "living-room", "temperature": 21.5, "mode": "heat"}, {"mode": "exact"})],
    [C("thermostat_set", {"device_id": "living-room", "temperature": 21.5, "mode": "heat"})],
    True,
    "thermostat with number and enum",
)
case(K, ["weather_get"], [E("weather_get", PARIS)], [], False, "no call made at all: the expected call is missing")
case(
    K,
    ["orders_search", "order_cancel"],
    [E("order_cancel", {"order_id": "A-1001", "reason": "damaged"}, {"reason": "exact"})],
    [C("order_cancel", {"order_id": "A-1001", "reason": "damaged"})],
    True,
    "cancel with the exact reason",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "contact": CONTACT})],
    [C("restaurant_reserve", {**RESERVE, "contact": CONTACT})],
    True,
    "reservation with nested contact object",
)
case(
    K,
    ["product_search"],
    [E("product_search", {"query": "wireless headphones"})],
    [C("product_search", {"query": "Wireless Headphones"})],
    True,
    "query differs only in case (normalized)",
)
case(
    K,
    ["currency_convert"],
    [E("currency_convert", {"amount": 100, "from_currency": "USD", "to_currency": "EUR"})],
    [C("currency_convert", {"amount": 100, "from_currency": "USD", "to_currency": "EUR"})],
    True,
    "currency conversion verbatim",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS), E("weather_forecast", {"city": "Paris", "days": 3})],
    [C("weather_get", PARIS)],
    False,
    "only one of the two expected calls was made",
)

# ---------------------------------------------------------------- hallucinated_argument
K = "hallucinated_argument"
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS, {"city": "normalized"})],
    [C("weather_get", {"city": "paris", "units_hint": "c"}, {"temp": 20})],
    False,
    "units_hint is not a parameter of weather_get",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", {"city": "Paris", "units": "celsius"})],
    True,
    "units is a real optional parameter, not a hallucination",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", TRANSFER)],
    [C("bank_transfer", {**TRANSFER, "priority": "high"})],
    False,
    "priority is not a bank_transfer parameter",
)
case(
    K,
    ["log_event"],
    [E("log_event", {"event": "signup"})],
    [C("log_event", {"event": "signup", "user_id": "u-9"})],
    False,
    "properties is open but the top level is closed: user_id is unknown",
)
case(
    K,
    ["web_search"],
    [E("web_search", {"query": "python asyncio tutorial"})],
    [C("web_search", {"query": "python asyncio tutorial", "safe_search": True})],
    True,
    "web_search says additionalProperties: true, so extra options are allowed",
)
case(
    K,
    ["shipment_track"],
    [E("shipment_track", {"tracking_number": "1Z999AA10123456784"})],
    [C("shipment_track", {"tracking_number": "1Z999AA10123456784", "carrier": "UPS"})],
    True,
    "additionalProperties is a string schema; carrier is a string",
)
case(
    K,
    ["shipment_track"],
    [E("shipment_track", {"tracking_number": "1Z999AA10123456784"})],
    [C("shipment_track", {"tracking_number": "1Z999AA10123456784", "carrier_code": 5})],
    False,
    "extra argument allowed only as a string; 5 is an integer",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", {**HOTEL, "stars": 4})],
    False,
    "stars is not a hotel_search parameter",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [C("message_send", {"recipient": "Sam", "body": "Meeting moved to 3pm", "priority": "high"})],
    False,
    "priority is made up (the real flag is urgent)",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "nonstop": True})],
    True,
    "nonstop is a real optional parameter",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "direct_only": True})],
    False,
    "direct_only is not a parameter (nonstop is)",
)
case(
    K,
    ["calendar_create_event"],
    [E("calendar_create_event", {"title": "Standup", "start": "2024-03-12T09:00"})],
    [C("calendar_create_event", {"title": "Standup", "start": "2024-03-12T09:00", "timezone": "Europe/Paris"})],
    False,
    "timezone is not a calendar_create_event parameter",
)
case(
    K,
    ["cart_add_item"],
    [E("cart_add_item", {"product_id": "SKU-42", "quantity": 1})],
    [C("cart_add_item", {"product_id": "SKU-42", "quantity": 1, "coupon": None})],
    False,
    "an unknown argument is invalid even when its value is null",
)
case(
    K,
    ["product_search"],
    [E("product_search", {"query": "usb-c hub"})],
    [C("product_search", {"query": "usb-c hub", "sort": "price_asc"})],
    True,
    "sort is a real optional parameter with a valid enum value",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", {"citty": "Paris"})],
    False,
    "misspelled argument name: citty is unknown and city is missing",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", {"city": "Paris", "City": "Paris"})],
    False,
    "argument names are case-sensitive: City is unknown",
)

# ---------------------------------------------------------------- nested_hallucinated_argument
K = "nested_hallucinated_argument"
case(
    K,
    ["flights_search"],
    [E("flights_search", {**FLIGHT, "passengers": {"adults": 2}})],
    [C("flights_search", {**FLIGHT, "passengers": {"adults": 2, "seniors": 1}})],
    False,
    "passengers has no seniors field; nested objects are closed",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", {**FLIGHT, "passengers": {"adults": 2, "children": 1}})],
    [C("flights_search", {**FLIGHT, "passengers": {"adults": 2, "children": 1}})],
    True,
    "nested passengers uses only known fields",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "contact": CONTACT})],
    [C("restaurant_reserve", {**RESERVE, "contact": {**CONTACT, "email": "dana@x.com"}})],
    False,
    "contact has no email field",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "contact": CONTACT})],
    [C("restaurant_reserve", {**RESERVE, "contact": CONTACT})],
    True,
    "contact uses only name and phone",
)
case(
    K,
    ["flight_book"],
    [E("flight_book", {"flight_id": "AF123", "passengers": [{"first_name": "Ana", "last_name": "Silva"}]})],
    [
        C(
            "flight_book",
            {
                "flight_id": "AF123",
                "passengers": [{"first_name": "Ana", "last_name": "Silva", "passport_number": "X1234567"}],
            },
        )
    ],
    False,
    "array items are closed objects too: passport_number is unknown",
)
case(
    K,
    ["flight_book"],
    [
        E(
            "flight_book",
            {
                "flight_id": "AF123",
                "passengers": [{"first_name": "Ana", "last_name": "Silva", "birth_date": "1990-02-01"}],
            },
        )
    ],
    [
        C(
            "flight_book",
            {
                "flight_id": "AF123",
                "passengers": [{"first_name": "Ana", "last_name": "Silva", "birth_date": "1990-02-01"}],
            },
        )
    ],
    True,
    "array item objects with known fields only",
)
case(
    K,
    ["calendar_create_event"],
    [
        E(
            "calendar_create_event",
            {"title": "Dentist", "start": "2024-04-02T08:30", "reminder": {"minutes_before": 15, "method": "popup"}},
        )
    ],
    [
        C(
            "calendar_create_event",
            {
                "title": "Dentist",
                "start": "2024-04-02T08:30",
                "reminder": {"minutes_before": 15, "method": "popup", "sound": "chime"},
            },
        )
    ],
    False,
    "reminder has no sound field",
)
case(
    K,
    ["log_event"],
    [E("log_event", {"event": "checkout"})],
    [C("log_event", {"event": "checkout", "properties": {"cart_value": 59.9, "coupon": "SPRING", "items": 3}})],
    True,
    "properties says additionalProperties: true; any keys are allowed inside it",
)
case(
    K,
    ["crm_update_contact"],
    [E("crm_update_contact", {"contact_id": "C-7", "address": {"street": "1 Main St", "city": "Austin"}})],
    [
        C(
            "crm_update_contact",
            {"contact_id": "C-7", "address": {"street": "1 Main St", "city": "Austin", "region": "TX"}},
        )
    ],
    False,
    "address (a $ref to $defs) is closed: region is unknown",
)
case(
    K,
    ["crm_update_contact"],
    [
        E(
            "crm_update_contact",
            {"contact_id": "C-7", "address": {"street": "1 Main St", "city": "Austin", "postal_code": "78701"}},
        )
    ],
    [
        C(
            "crm_update_contact",
            {"contact_id": "C-7", "address": {"street": "1 Main St", "city": "Austin", "postal_code": "78701"}},
        )
    ],
    True,
    "address through $ref with known fields",
)
case(
    K,
    ["cart_add_item"],
    [E("cart_add_item", {"product_id": "TSHIRT-1", "quantity": 2})],
    [C("cart_add_item", {"product_id": "TSHIRT-1", "quantity": 2, "options": {"color": "red", "size": "M"}})],
    True,
    "options allows any string-valued keys",
)
case(
    K,
    ["cart_add_item"],
    [E("cart_add_item", {"product_id": "TSHIRT-1", "quantity": 2})],
    [C("cart_add_item", {"product_id": "TSHIRT-1", "quantity": 2, "options": {"color": "red", "gift_wrap": True}})],
    False,
    "options values must be strings; gift_wrap is a boolean",
)
case(
    K,
    ["shipment_create"],
    [
        E(
            "shipment_create",
            {"recipient": "Jo", "package": {"weight_kg": 2.5, "dimensions": {"length_cm": 30, "width_cm": 20}}},
        )
    ],
    [
        C(
            "shipment_create",
            {
                "recipient": "Jo",
                "package": {"weight_kg": 2.5, "dimensions": {"length_cm": 30, "width_cm": 20, "depth_cm": 10}},
            },
        )
    ],
    False,
    "two levels deep: dimensions has no depth_cm",
)
case(
    K,
    ["shipment_create"],
    [
        E(
            "shipment_create",
            {"recipient": "Jo", "package": {"weight_kg": 2.5, "dimensions": {"length_cm": 30, "width_cm": 20}}},
        )
    ],
    [
        C(
            "shipment_create",
            {"recipient": "Jo", "package": {"weight_kg": 2.5, "dimensions": {"length_cm": 30, "width_cm": 20}}},
        )
    ],
    True,
    "two levels deep, all fields known",
)
case(
    K,
    ["shipment_create"],
    [E("shipment_create", {"recipient": "Jo", "package": {"weight_kg": 2.5}})],
    [C("shipment_create", {"recipient": "Jo", "package": {"weight_kg": 2.5, "fragile": True}})],
    False,
    "package has no fragile field",
)

# ---------------------------------------------------------------- alternatives
K = "alternatives"
VISA = {"nationality": "Canada", "destination_country": "Australia"}
VISA_E = E("visa_requirements", VISA, {"destination_country": "one_of"}, {"destination_country": ["AU", "AUS"]})
case(
    K,
    ["visa_requirements"],
    [VISA_E],
    [C("visa_requirements", {"nationality": "Canada", "destination_country": "AU"})],
    True,
    "AU is a listed alternative",
)
case(
    K,
    ["visa_requirements"],
    [VISA_E],
    [C("visa_requirements", {"nationality": "Canada", "destination_country": "aus"})],
    True,
    "aus matches alternative AUS after normalisation",
)
case(
    K,
    ["visa_requirements"],
    [VISA_E],
    [C("visa_requirements", {"nationality": "Canada", "destination_country": "Austria"})],
    False,
    "Austria is neither the expected value nor an alternative",
)
case(
    K,
    ["visa_requirements"],
    [VISA_E],
    [C("visa_requirements", {"nationality": "Canada", "destination_country": "Australia"})],
    True,
    "the expected value itself",
)
PS_CAT = E(
    "product_search",
    {"query": "laptop stand", "category": "electronics"},
    {"category": "absent_or_one_of"},
    {"category": ["computers"]},
)
case(
    K,
    ["product_search"],
    [PS_CAT],
    [C("product_search", {"query": "laptop stand"})],
    True,
    "absent_or_one_of: the category may be left out",
)
case(
    K,
    ["product_search"],
    [PS_CAT],
    [C("product_search", {"query": "laptop stand", "category": "computers"})],
    True,
    "absent_or_one_of: computers is a listed alternative",
)
case(
    K,
    ["product_search"],
    [PS_CAT],
    [C("product_search", {"query": "laptop stand", "category": "toys"})],
    False,
    "absent_or_one_of: present but toys is not acceptable",
)
case(
    K,
    ["product_search"],
    [
        E(
            "product_search",
            {"query": "laptop stand", "category": "electronics"},
            {"category": "one_of"},
            {"category": ["computers"]},
        )
    ],
    [C("product_search", {"query": "laptop stand"})],
    False,
    "one_of (unlike absent_or_one_of) needs the optional category to be present",
)
EMAIL_E = E(
    "email_send",
    {"to": ["a@x.com", "b@x.com"], "subject": "Minutes", "body": "x"},
    {"to": "one_of", "body": "any"},
    {"to": [["b@x.com", "a@x.com"]]},
)
case(
    K,
    ["email_send"],
    [EMAIL_E],
    [C("email_send", {"to": ["b@x.com", "a@x.com"], "subject": "Minutes", "body": "Attached."})],
    True,
    "array alternative in the listed order",
)
case(
    K,
    ["email_send"],
    [EMAIL_E],
    [C("email_send", {"to": ["a@x.com"], "subject": "Minutes", "body": "Attached."})],
    False,
    "one recipient only: matches neither the value nor the alternative",
)
case(
    K,
    ["visa_requirements"],
    [E("visa_requirements", VISA, {}, {"destination_country": ["AU", "AUS"]})],
    [C("visa_requirements", {"nationality": "Canada", "destination_country": "AU"})],
    False,
    "alternatives are only used by one_of/absent_or_one_of; here the matcher is the default normalized",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", {"city": "New York City"}, {"city": "one_of"}, {"city": ["NYC", "New York"]})],
    [C("weather_get", {"city": "new-york"})],
    True,
    "new-york normalises to new york, an alternative",
)
case(
    K,
    ["flights_search"],
    [
        E(
            "flights_search",
            FLIGHT | {"origin": "JFK"},
            {"origin": "one_of"},
            {"origin": ["John F. Kennedy International Airport"]},
        )
    ],
    [C("flights_search", {**FLIGHT, "origin": "John F Kennedy International Airport"})],
    True,
    "alternative matched with the dot dropped",
)
case(
    K,
    ["product_search"],
    [PS_CAT],
    [C("product_search", {"query": "laptop stand", "category": "electronics"})],
    True,
    "absent_or_one_of: present with the expected value",
)
case(
    K,
    ["translate_text"],
    [
        E(
            "translate_text",
            {"text": "Good morning", "target_language": "French"},
            {"target_language": "one_of"},
            {"target_language": ["fr", "fr-FR"]},
        )
    ],
    [C("translate_text", {"text": "Good morning", "target_language": "fr"})],
    True,
    "language code fr is an alternative",
)
case(
    K,
    ["translate_text"],
    [
        E(
            "translate_text",
            {"text": "Good morning", "target_language": "French"},
            {"target_language": "one_of"},
            {"target_language": ["fr", "fr-FR"]},
        )
    ],
    [C("translate_text", {"text": "Good morning", "target_language": "de"})],
    False,
    "de is not French",
)

# ---------------------------------------------------------------- optional_argument
K = "optional_argument"
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", {"city": "Paris", "units": "fahrenheit"})],
    True,
    "an optional argument not in the expected call is ignored",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", {"city": "Paris", "units": "celsius"})],
    [C("weather_get", PARIS)],
    False,
    "units is optional in the schema but the expected call needs it",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", {**HOTEL, "amenities": ["wifi", "pool"]})],
    True,
    "optional amenities not asked for: ignored",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", {**HOTEL, "amenities": ["wifi", "wifi"]})],
    False,
    "amenities must have unique items",
)
case(
    K,
    ["product_search"],
    [E("product_search", {"query": "desk lamp"})],
    [C("product_search", {"query": "desk lamp", "sort": "cheapest"})],
    False,
    "cheapest is not in the sort enum",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "cabin": "business"})],
    True,
    "optional cabin not in the expected call: ignored",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "max_stops": "1"})],
    False,
    "max_stops must be an integer, not a string",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [C("message_send", {"recipient": "Sam", "body": "See you at 6", "urgent": False})],
    True,
    "optional urgent flag: ignored",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [C("message_send", {"recipient": "Sam", "body": "See you at 6", "channel": "telegram"})],
    False,
    "telegram is not in the channel enum",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", TRANSFER)],
    [C("bank_transfer", {**TRANSFER, "memo": "rent"})],
    True,
    "optional memo: ignored",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", {**TRANSFER, "memo": "x"}, {"memo": "any"})],
    [C("bank_transfer", TRANSFER)],
    False,
    "the expected call needs a memo (any) and none was given",
)
case(
    K,
    ["calendar_create_event"],
    [E("calendar_create_event", {"title": "Lunch", "start": "2024-03-14T12:30"})],
    [C("calendar_create_event", {"title": "Lunch", "start": "2024-03-14T12:30", "location": "Cafe Luna"})],
    True,
    "optional location: ignored",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", TRANSFER)],
    [C("bank_transfer", {**TRANSFER, "memo": None})],
    False,
    "memo is a string; null is the wrong type",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", {**FLIGHT, "cabin": "business"}, {"cabin": "exact"})],
    [C("flights_search", {**FLIGHT, "cabin": "first"})],
    False,
    "expected cabin business, got first",
)
case(
    K,
    ["calendar_create_event"],
    [E("calendar_create_event", {"title": "Offsite", "start": "2024-09-02"})],
    [C("calendar_create_event", {"title": "Offsite", "start": "2024-09-02", "all_day": True})],
    True,
    "optional all_day flag: ignored",
)

# ---------------------------------------------------------------- integer_float
K = "integer_float"
case(
    K,
    ["weather_forecast"],
    [E("weather_forecast", {"city": "Oslo", "days": 5})],
    [C("weather_forecast", {"city": "Oslo", "days": 5.0})],
    False,
    "days is an integer; 5.0 is a float",
)
case(
    K,
    ["weather_forecast"],
    [E("weather_forecast", {"city": "Oslo", "days": 5})],
    [C("weather_forecast", {"city": "Oslo", "days": 5})],
    True,
    "integer days",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", {**HOTEL, "guests": 2.0})],
    False,
    "guests is an integer; 2.0 is a float",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", {**HOTEL, "max_price": 150.0})],
    [C("hotel_search", {**HOTEL, "max_price": 150})],
    True,
    "max_price is a number: 150 equals 150.0",
)
case(
    K,
    ["thermostat_set"],
    [E("thermostat_set", {"device_id": "hall", "temperature": 21})],
    [C("thermostat_set", {"device_id": "hall", "temperature": 21.0})],
    True,
    "temperature is a number: 21.0 is valid and equals 21",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", {**FLIGHT, "passengers": {"adults": 2}})],
    [C("flights_search", {**FLIGHT, "passengers": {"adults": 2.0}})],
    False,
    "nested integer written as a float",
)
case(
    K,
    ["weather_forecast"],
    [E("weather_forecast", {"city": "Oslo", "days": 7.0})],
    [C("weather_forecast", {"city": "Oslo", "days": 7})],
    True,
    "the expected value is written 7.0 but the agent's integer 7 is valid and equal",
)
case(
    K,
    ["cart_add_item"],
    [E("cart_add_item", {"product_id": "SKU-42", "quantity": 3})],
    [C("cart_add_item", {"product_id": "SKU-42", "quantity": 3.0})],
    False,
    "quantity is an integer",
)
case(
    K,
    ["cart_add_item"],
    [E("cart_add_item", {"product_id": "SKU-42", "quantity": 3})],
    [C("cart_add_item", {"product_id": "SKU-42", "quantity": 3})],
    True,
    "integer quantity",
)
case(
    K,
    ["bank_list_transactions"],
    [E("bank_list_transactions", {"account_id": "CHK-001", "limit": 10})],
    [C("bank_list_transactions", {"account_id": "CHK-001", "limit": 10.5})],
    False,
    "limit is an integer; 10.5 is not",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", RESERVE)],
    [C("restaurant_reserve", {**RESERVE, "party_size": "4"})],
    False,
    "party_size is an integer; a string is the wrong type",
)
case(
    K,
    ["maps_nearby"],
    [E("maps_nearby", {"location": [40.7128, -74.006], "radius_m": 500}, {"location": "ordered"})],
    [C("maps_nearby", {"location": [40.7128, -74.006], "radius_m": 500.0})],
    False,
    "radius_m is an integer",
)
case(
    K,
    ["recipe_search"],
    [E("recipe_search", {"ingredients": ["eggs", "spinach"], "max_minutes": 30}, {"ingredients": "set"})],
    [C("recipe_search", {"ingredients": ["eggs", "spinach"], "max_minutes": 30})],
    True,
    "integer max_minutes",
)
case(
    K,
    ["calendar_create_event"],
    [
        E(
            "calendar_create_event",
            {"title": "Dentist", "start": "2024-04-02T08:30", "reminder": {"minutes_before": 10}},
        )
    ],
    [
        C(
            "calendar_create_event",
            {"title": "Dentist", "start": "2024-04-02T08:30", "reminder": {"minutes_before": 10.0}},
        )
    ],
    False,
    "nested minutes_before is an integer",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", {**TRANSFER, "amount": 100.0})],
    [C("bank_transfer", {**TRANSFER, "amount": 100})],
    True,
    "amount is a number: the integer 100 is valid and equals 100.0",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", {**HOTEL, "guests": True})],
    False,
    "a boolean is not an integer",
)
case(
    K,
    ["music_play"],
    [E("music_play", {"tracks": ["Intro"]}, {"tracks": "ordered"})],
    [C("music_play", {"tracks": ["Intro"], "volume": 60.0})],
    False,
    "optional volume is an integer; 60.0 is a float (invalid even though not expected)",
)

# ---------------------------------------------------------------- array_order
K = "array_order"
NEARBY = E("maps_nearby", {"location": [48.8566, 2.3522]}, {"location": "ordered"})
case(
    K,
    ["maps_nearby"],
    [NEARBY],
    [C("maps_nearby", {"location": [48.8566, 2.3522]})],
    True,
    "[lat, lon] in order",
)
case(
    K,
    ["maps_nearby"],
    [NEARBY],
    [C("maps_nearby", {"location": [2.3522, 48.8566]})],
    False,
    "[lon, lat] is not [lat, lon] under ordered",
)
DIRS = E(
    "maps_directions",
    {"origin": "Paris", "destination": "Geneva", "waypoints": ["Dijon", "Lyon"]},
    {"waypoints": "ordered"},
)
case(
    K,
    ["maps_directions"],
    [DIRS],
    [C("maps_directions", {"origin": "Paris", "destination": "Geneva", "waypoints": ["Lyon", "Dijon"]})],
    False,
    "waypoints in the wrong order",
)
case(
    K,
    ["maps_directions"],
    [DIRS],
    [C("maps_directions", {"origin": "Paris", "destination": "Geneva", "waypoints": ["dijon", "LYON"]})],
    True,
    "ordered elements are compared normalized",
)
case(
    K,
    ["calendar_create_event"],
    [
        E(
            "calendar_create_event",
            {"title": "Sync", "start": "2024-03-12T10:00", "attendees": ["ana@x.com", "bo@x.com", "cy@x.com"]},
            {"attendees": "set"},
        )
    ],
    [
        C(
            "calendar_create_event",
            {"title": "Sync", "start": "2024-03-12T10:00", "attendees": ["cy@x.com", "ana@x.com", "bo@x.com"]},
        )
    ],
    True,
    "attendees as a set: order does not matter",
)
RECIPE = E("recipe_search", {"ingredients": ["tomato", "basil", "mozzarella"]}, {"ingredients": "set"})
case(
    K,
    ["recipe_search"],
    [RECIPE],
    [C("recipe_search", {"ingredients": ["Mozzarella", "tomato", "Basil"]})],
    True,
    "set with normalized elements",
)
case(
    K,
    ["recipe_search"],
    [RECIPE],
    [C("recipe_search", {"ingredients": ["tomato", "mozzarella"]})],
    False,
    "set is missing basil",
)
case(
    K,
    ["recipe_search"],
    [RECIPE],
    [C("recipe_search", {"ingredients": ["tomato", "basil", "mozzarella", "garlic"]})],
    False,
    "set has an extra element",
)
case(
    K,
    ["music_play"],
    [E("music_play", {"tracks": ["Song A", "Song A", "Song B"]}, {"tracks": "set"})],
    [C("music_play", {"tracks": ["Song A", "Song B", "Song B"]})],
    False,
    "multisets differ: two A and one B versus one A and two B",
)
case(
    K,
    ["maps_directions"],
    [E("maps_directions", {"origin": "Paris", "destination": "Geneva", "avoid": ["tolls"]}, {"avoid": "set"})],
    [C("maps_directions", {"origin": "Paris", "destination": "Geneva", "avoid": ["tolls", "tolls"]})],
    False,
    "avoid has uniqueItems: duplicate entries are invalid",
)
case(
    K,
    ["maps_directions"],
    [
        E(
            "maps_directions",
            {"origin": "Paris", "destination": "Geneva", "avoid": ["tolls", "highways"]},
            {"avoid": "set"},
        )
    ],
    [C("maps_directions", {"origin": "Paris", "destination": "Geneva", "avoid": ["highways", "tolls"]})],
    True,
    "avoid as a set in another order",
)
PLAY = E("music_play", {"tracks": ["Blue in Green", "So What", "Freddie Freeloader"]}, {"tracks": "ordered"})
case(
    K,
    ["music_play"],
    [PLAY],
    [C("music_play", {"tracks": ["So What", "Freddie Freeloader", "Blue in Green"]})],
    False,
    "playlist order matters under ordered",
)
case(
    K,
    ["music_play"],
    [PLAY],
    [C("music_play", {"tracks": ["blue in green", "SO WHAT", "Freddie Freeloader"]})],
    True,
    "same order, case differs",
)
case(
    K,
    ["maps_directions"],
    [DIRS],
    [C("maps_directions", {"origin": "Paris", "destination": "Geneva", "waypoints": ["Dijon"]})],
    False,
    "ordered arrays must have the same length",
)
case(
    K,
    ["email_send"],
    [
        E(
            "email_send",
            {"to": ["a@x.com", "b@x.com"], "subject": "Plan", "body": "x"},
            {"to": "set", "body": "any"},
        )
    ],
    [C("email_send", {"to": ["b@x.com", "a@x.com"], "subject": "Plan", "body": "Draft attached"})],
    True,
    "recipients as a set",
)

# ---------------------------------------------------------------- dates
K = "dates"
CAL_DAY = "calendar_list_events"


def day_case(expected: str, actual: str, accept: bool, note: str) -> None:
    case(K, [CAL_DAY], [E(CAL_DAY, {"date": expected})], [C(CAL_DAY, {"date": actual})], accept, note)


day_case("2022-01-05", "2022-1-5", True, "year-first without zero padding")
day_case("2022-01-05", "2022/01/05", True, "year-first with slashes")
day_case("2022-05-12", "May 12, 2022", True, "month-name date")
day_case("2022-05-12", "May.12,2022", True, "month-name date with odd punctuation")
day_case("2022-05-12", "12 May 2022", True, "day month-name year")
day_case("1915-03-17", "Mar 17 1915", True, "abbreviated month name")
day_case("1915-03-17", "03/17/1915", True, "M/D/Y unambiguous since 17 > 12")
day_case("1915-03-17", "17/03/1915", True, "D/M/Y unambiguous since 17 > 12")
day_case("2022-03-04", "03/04/2022", False, "03/04/2022 is ambiguous: compared as text, not equal to 2022-03-04")
day_case("2022-04-03", "03/04/2022", False, "03/04/2022 is ambiguous: compared as text, not equal to 2022-04-03")
day_case("03/04/2022", "03/04/2022", True, "identical ambiguous text")
day_case("2022-01-05", "2022-01-06", False, "different day")
day_case("2022-05-12", "May 21, 2022", False, "different day (21 not 12)")
day_case("2022-01-13", "01/13/2022", True, "M/D/Y unambiguous since 13 > 12")
day_case("2022-01-13", "13/01/2022", True, "D/M/Y unambiguous since 13 > 12")
day_case("2022-12-05", "12/05/2022", False, "12/05/2022 is ambiguous: not equal to 2022-12-05")
day_case("2022-05-12", "2023-05-12", False, "different year")
day_case("03/04/2022", "03-04-2022", True, "both ambiguous, compared as text: hyphen and slash both become a space")
case(
    K,
    ["calendar_create_event"],
    [E("calendar_create_event", {"title": "Call", "start": "2022-01-05T14:30"})],
    [C("calendar_create_event", {"title": "Call", "start": "2022-01-05 14:30:00"})],
    True,
    "T-separated and space-separated datetimes with seconds are the same instant",
)
case(
    K,
    ["calendar_create_event"],
    [E("calendar_create_event", {"title": "Call", "start": "2022-01-05T14:30"})],
    [C("calendar_create_event", {"title": "Call", "start": "2022-01-05T15:30"})],
    False,
    "one hour later",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "time": "14:30"})],
    [C("restaurant_reserve", {**RESERVE, "time": "2:30 PM"})],
    True,
    "2:30 PM is 14:30",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "time": "14:30"})],
    [C("restaurant_reserve", {**RESERVE, "time": "2:30 AM"})],
    False,
    "2:30 AM is not 14:30",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "date": "2024-05-20"})],
    [C("restaurant_reserve", {**RESERVE, "date": "20 May 2024"})],
    True,
    "reservation date in day month-name year form",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", {**FLIGHT, "departure_date": "2024-06-10"})],
    [C("flights_search", {**FLIGHT, "departure_date": "June 10, 2024"})],
    True,
    "departure date with full month name",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", {**FLIGHT, "departure_date": "2024-06-10"})],
    [C("flights_search", {**FLIGHT, "departure_date": "06/10/2024"})],
    False,
    "06/10/2024 is ambiguous (both parts <= 12): not equal to 2024-06-10",
)

# ---------------------------------------------------------------- normalization
K = "normalization"


def city_case(expected: str, actual: str, accept: bool, note: str) -> None:
    case(K, ["weather_get"], [E("weather_get", {"city": expected})], [C("weather_get", {"city": actual})], accept, note)


def query_case(expected: str, actual: str, accept: bool, note: str) -> None:
    case(
        K,
        ["job_search"],
        [E("job_search", {"query": expected})],
        [C("job_search", {"query": actual})],
        accept,
        note,
    )


city_case("Paris", "Ｐａｒｉｓ", True, "fullwidth letters fold under NFKC")
city_case("New York", "New   York", True, "runs of spaces collapse")
city_case("St. Louis", "st louis", True, "the dot is dropped, case folds")
city_case("San Francisco", "san_francisco", True, "underscore becomes a space")
city_case("Winston-Salem", "winston salem", True, "hyphen becomes a space")
city_case("Paris", "  Paris  ", True, "surrounding whitespace")
city_case("Paris", "Paris, France", False, "extra words are not dropped")
city_case("Paris", "Paris.", True, "trailing dot dropped")
city_case("São Paulo", "Sao Paulo", False, "NFKC and casefold keep accents: São is not Sao")
query_case("C# developer", "C developer", False, "# is kept: C# is not C")
query_case("C++ engineer", "C engineer", False, "+ is kept: C++ is not C")
query_case("C# developer", "c# Developer", True, "case only")
query_case("ﬁnance analyst", "finance analyst", True, "the fi ligature folds under NFKC")
query_case("50% remote", "50 remote", False, "% is kept")
query_case("R&D manager", "RD manager", False, "& is kept")
query_case("Sales (EMEA)", "sales emea", True, "parentheses are dropped")
case(
    K,
    ["maps_directions"],
    [E("maps_directions", {"origin": "Hauptstraße 5, Berlin", "destination": "Alexanderplatz"})],
    [C("maps_directions", {"origin": "HAUPTSTRASSE 5 Berlin", "destination": "alexanderplatz"})],
    True,
    "casefold maps ß to ss; the comma is dropped",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "(555) 123-4567", "body": "Hello!"})],
    [C("message_send", {"recipient": "555 123 4567", "body": "hello"})],
    True,
    "parentheses and ! dropped, hyphen to space",
)
case(
    K,
    ["crm.contacts.lookup"],
    [E("crm.contacts.lookup", {"email": "dana.lee@example.com"})],
    [C("crm.contacts.lookup", {"email": "Dana.Lee@Example.com"})],
    True,
    "email differs only in case",
)
case(
    K,
    ["thermostat_set"],
    [E("thermostat_set", {"device_id": "hall", "temperature": "21"})],
    [C("thermostat_set", {"device_id": "hall", "temperature": 21})],
    True,
    "numbers compare as numbers: 21 equals the expected string 21",
)
case(
    K,
    ["thermostat_set"],
    [E("thermostat_set", {"device_id": "hall", "temperature": 21})],
    [C("thermostat_set", {"device_id": "hall", "temperature": 21.5})],
    False,
    "21.5 is not 21",
)
case(
    K,
    ["stock_quote"],
    [E("stock_quote", {"symbol": "BRK.B"})],
    [C("stock_quote", {"symbol": "brk b"})],
    False,
    "the dot is dropped, not turned into a space: brkb is not brk b",
)

# ---------------------------------------------------------------- wrong_function
K = "wrong_function"
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS)],
    [C("weather_forecast", {"city": "Paris", "days": 1})],
    False,
    "forecast called instead of current weather",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_forecast", {"city": "Paris", "days": 3})],
    [C("weather_forecast", {"city": "Paris", "days": 3})],
    True,
    "the right one of two similar tools",
)
case(
    K,
    ["hotel_search", "hotel_book"],
    [E("hotel_book", {"hotel_id": "H-77", "room_type": "double", "guests": 2})],
    [C("hotel_search", HOTEL)],
    False,
    "searched instead of booking",
)
case(
    K,
    ["bank_get_balance", "bank_list_transactions"],
    [E("bank_get_balance", {"account_id": "CHK-001"})],
    [C("bank_list_transactions", {"account_id": "CHK-001"})],
    False,
    "listed transactions instead of getting the balance",
)
case(
    K,
    ["message_send", "email_send"],
    [E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [C("email_send", {"to": ["Sam"], "subject": "Hi", "body": "Running late"})],
    False,
    "email sent where a message was expected",
)
case(
    K,
    ["message_send", "email_send"],
    [E("email_send", {"to": ["sam@x.com"], "subject": "Report", "body": "x"}, {"body": "any"})],
    [C("email_send", {"to": ["sam@x.com"], "subject": "Report", "body": "Here it is."})],
    True,
    "email_send chosen correctly over message_send",
)
case(
    K,
    ["orders_search", "order_cancel"],
    [E("order_cancel", {"order_id": "A-1001"})],
    [C("orders_search", {"customer_email": "kim@x.com"})],
    False,
    "looked up orders but never cancelled",
)
case(
    K,
    ["orders_search", "order_cancel"],
    [E("orders_search", {"customer_email": "kim@x.com"}), E("order_cancel", {"order_id": "A-1001"})],
    [C("orders_search", {"customer_email": "kim@x.com"}), C("order_cancel", {"order_id": "A-1001"})],
    True,
    "both tools used as expected",
)
case(
    K,
    ["flights_search", "flight_book"],
    [E("flights_search", FLIGHT)],
    [C("flight_book", {"flight_id": "BA178", "passengers": [{"first_name": "Ana", "last_name": "Silva"}]})],
    False,
    "booked instead of searching",
)
case(
    K,
    ["calendar_create_event", "calendar_list_events"],
    [E("calendar_create_event", {"title": "Gym", "start": "2024-03-15T18:00"})],
    [C("calendar_list_events", {"date": "2024-03-15"})],
    False,
    "listed events instead of creating one",
)
case(
    K,
    ["calendar_create_event", "calendar_list_events"],
    [E("calendar_list_events", {"date": "2024-03-15"})],
    [C("calendar_list_events", {"date": "2024-03-15"})],
    True,
    "listing was what was asked",
)
case(
    K,
    ["weather_get", "weather_forecast", "message_send"],
    [E("weather_get", PARIS), E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [C("weather_get", PARIS), C("weather_forecast", {"city": "Paris", "days": 2})],
    False,
    "second expected call (message) replaced by a forecast",
)
case(
    K,
    ["stock_quote", "currency_convert"],
    [E("stock_quote", {"symbol": "TSLA"})],
    [C("currency_convert", {"amount": 1, "from_currency": "USD", "to_currency": "EUR"})],
    False,
    "converted currency instead of quoting a stock",
)
case(
    K,
    ["maps_directions", "maps_nearby"],
    [E("maps_directions", {"origin": "Louvre", "destination": "Orsay"})],
    [C("maps_nearby", {"location": [48.8606, 2.3376], "place_type": "museum"})],
    False,
    "nearby search instead of directions",
)

# ---------------------------------------------------------------- unknown_tool
K = "unknown_tool"
case(K, ["weather_get"], [E("weather_get", PARIS)], [C("get_weather", PARIS)], False, "get_weather is not offered")
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("Weather_Get", PARIS)],
    False,
    "tool names are case-sensitive",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_alerts", PARIS)],
    False,
    "expected call made, but weather_alerts is not offered",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights.search", FLIGHT)],
    False,
    "flights.search is not flights_search",
)
case(
    K,
    ["bank_get_balance"],
    [E("bank_get_balance", {"account_id": "CHK-001"})],
    [C("bank_get_balance", {"account_id": "CHK-001"}), C("bank_transfer", TRANSFER)],
    False,
    "bank_transfer exists elsewhere but is not offered in this task",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [C("message_send", {"recipient": "Sam", "body": "On my way"}), C("send_sms", {"to": "Sam", "text": "On my way"})],
    False,
    "send_sms is not offered",
)
case(
    K,
    ["crm.contacts.lookup"],
    [E("crm.contacts.lookup", {"email": "dana@x.com"})],
    [C("crm.contacts.lookup", {"email": "dana@x.com"})],
    True,
    "a dotted tool name that is offered",
)
case(
    K,
    ["geo-code"],
    [E("geo-code", {"address": "10 Downing St, London"})],
    [C("geo-code", {"address": "10 Downing St, London"})],
    True,
    "a hyphenated tool name that is offered",
)
case(
    K,
    ["geo-code"],
    [E("geo-code", {"address": "10 Downing St, London"})],
    [C("geo_code", {"address": "10 Downing St, London"})],
    False,
    "geo_code is not geo-code",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("functions.weather_get", PARIS)],
    False,
    "a namespace prefix makes it a different, unknown name",
)
case(
    K,
    ["translate_text"],
    [E("translate_text", {"text": "Thank you", "target_language": "Japanese"})],
    [C("translate", {"text": "Thank you", "target_language": "Japanese"})],
    False,
    "translate is not offered",
)
case(
    K,
    ["hotel_search", "hotel_book", "weather_get"],
    [E("hotel_search", HOTEL), E("weather_get", {"city": "Lisbon"})],
    [C("weather_get", {"city": "Lisbon"}), C("hotel_search", HOTEL)],
    True,
    "all calls to offered tools",
)
case(
    K,
    ["stock_quote"],
    [E("stock_quote", {"symbol": "NVDA"})],
    [C("stock_price", {"symbol": "NVDA"})],
    False,
    "stock_price is not offered",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_forecast", {"city": "Paris", "days": 2})],
    True,
    "an extra call, but to an offered tool",
)

# ---------------------------------------------------------------- missing_required
K = "missing_required"
case(K, ["weather_get"], [E("weather_get", PARIS)], [C("weather_get", {})], False, "city is required")
case(
    K,
    ["flights_search"],
    [E("flights_search", {"origin": "JFK", "destination": "LHR"})],
    [C("flights_search", {"origin": "JFK", "destination": "LHR"})],
    False,
    "departure_date is required by the schema even though the expected call does not list it",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", {"from_account": "CHK-001", "to_account": "SAV-002", "amount": 250.0})],
    [C("bank_transfer", {"from_account": "CHK-001", "to_account": "SAV-002", "amount": 250.0})],
    False,
    "currency is required",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", {"city": "Lisbon", "check_in": "2024-07-01", "guests": 2})],
    False,
    "check_out is required",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "passengers": {"children": 1}})],
    False,
    "passengers.adults is required when passengers is given",
)
case(
    K,
    ["flight_book"],
    [E("flight_book", {"flight_id": "AF123", "passengers": [{"first_name": "Ana", "last_name": "Silva"}]})],
    [C("flight_book", {"flight_id": "AF123", "passengers": [{"first_name": "Ana"}]})],
    False,
    "last_name is required in each passenger",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", HOTEL)],
    True,
    "all required present, optionals omitted",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", {"city": None})],
    False,
    "null is not a string: the required city has no valid value",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Sam"})],
    [C("message_send", {"recipient": "Sam"})],
    False,
    "body is required",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "contact": CONTACT})],
    [C("restaurant_reserve", {**RESERVE, "contact": CONTACT})],
    True,
    "all required at both levels",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", RESERVE)],
    [C("restaurant_reserve", {**RESERVE, "contact": {"name": "Dana Lee"}})],
    False,
    "contact.phone is required when contact is given",
)
case(
    K,
    ["calendar_create_event"],
    [E("calendar_create_event", {"title": "Gym", "start": "2024-03-15T18:00"})],
    [C("calendar_create_event", {"start": "2024-03-15T18:00"})],
    False,
    "title is required",
)
case(
    K,
    ["email_send"],
    [E("email_send", {"to": ["sam@x.com"], "subject": "Hi", "body": "x"}, {"body": "any"})],
    [C("email_send", {"to": ["sam@x.com"], "subject": "Hi", "body": "Long time no see"})],
    True,
    "cc is optional",
)
case(
    K,
    ["weather_forecast"],
    [E("weather_forecast", {"city": "Rome", "days": 4})],
    [C("weather_forecast", {"city": "Rome", "days": 4})],
    True,
    "both required given",
)
case(
    K,
    ["email_send"],
    [E("email_send", {"to": ["sam@x.com"], "subject": "Hi", "body": "x"}, {"body": "any"})],
    [C("email_send", {"to": [], "subject": "Hi", "body": "Long time no see"})],
    False,
    "to needs at least one recipient (minItems 1)",
)

# ---------------------------------------------------------------- wrong_value
K = "wrong_value"
case(K, ["weather_get"], [E("weather_get", PARIS)], [C("weather_get", {"city": "Lyon"})], False, "wrong city")
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", TRANSFER)],
    [C("bank_transfer", {**TRANSFER, "amount": 205.0})],
    False,
    "205 is not 250",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", TRANSFER, {"currency": "exact"})],
    [C("bank_transfer", {**TRANSFER, "currency": "USD"})],
    False,
    "USD is not EUR",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Sam", "body": "x", "urgent": True}, {"body": "any", "urgent": "exact"})],
    [C("message_send", {"recipient": "Sam", "body": "Call me now", "urgent": False})],
    False,
    "urgent must be true",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", {**HOTEL, "guests": 3})],
    False,
    "three guests instead of two",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [C("message_send", {"recipient": "Sam", "body": "Running 10 min late"})],
    True,
    "any body is fine",
)
case(
    K,
    ["order_cancel"],
    [E("order_cancel", {"order_id": "A-1001", "reason": "damaged"}, {"reason": "exact"})],
    [C("order_cancel", {"order_id": "A-1001", "reason": "other"})],
    False,
    "reason other instead of damaged",
)
case(
    K,
    ["thermostat_set"],
    [E("thermostat_set", {"device_id": "hall", "temperature": 20, "mode": "heat"}, {"mode": "exact"})],
    [C("thermostat_set", {"device_id": "hall", "temperature": 20, "mode": "cool"})],
    False,
    "cool instead of heat",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "origin": "LGA"})],
    False,
    "LGA is not JFK",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", TRANSFER)],
    [C("bank_transfer", {**TRANSFER, "amount": 250})],
    True,
    "250 equals 250.0",
)
case(
    K,
    ["currency_convert"],
    [E("currency_convert", {"amount": 5000, "from_currency": "USD", "to_currency": "JPY"})],
    [C("currency_convert", {"amount": 5000, "from_currency": "USD", "to_currency": "CNY"})],
    False,
    "CNY is not JPY",
)
case(
    K,
    ["stock_quote"],
    [E("stock_quote", {"symbol": "AAPL"})],
    [C("stock_quote", {"symbol": "APPL"})],
    False,
    "misspelled ticker",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "origin": "LHR", "destination": "JFK"})],
    False,
    "origin and destination swapped",
)
case(
    K,
    ["thermostat_set"],
    [E("thermostat_set", {"device_id": "hall", "temperature": 21.5})],
    [C("thermostat_set", {"device_id": "hall", "temperature": 22})],
    False,
    "22 is not 21.5",
)
case(
    K,
    ["ride_request"],
    [E("ride_request", {"pickup": "Union Station", "dropoff": "Airport", "ride_type": "xl"}, {"ride_type": "exact"})],
    [C("ride_request", {"pickup": "Union Station", "dropoff": "Airport", "ride_type": "xl", "passengers": 5})],
    True,
    "right values; passengers is an optional extra",
)

# ---------------------------------------------------------------- extra_calls
K = "extra_calls"
WF3 = {"city": "Paris", "days": 3}
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_forecast", WF3)],
    True,
    "an extra valid call to another tool",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_get", {"city": "London"})],
    True,
    "same tool, different arguments: not a repeat",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_forecast", {"city": "Paris", "days": 3.0})],
    False,
    "the extra call is invalid (days 3.0)",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("air_quality", PARIS)],
    False,
    "the extra call is to an unknown tool",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_get", PARIS)],
    False,
    "the extra call repeats the first",
)
case(
    K,
    ["orders_search", "order_cancel"],
    [E("order_cancel", {"order_id": "A-1001"})],
    [C("orders_search", {"customer_email": "kim@x.com"}), C("order_cancel", {"order_id": "A-1001"})],
    True,
    "a lookup before the expected call",
)
case(
    K,
    ["bank_get_balance", "bank_transfer"],
    [E("bank_transfer", TRANSFER)],
    [C("bank_get_balance", {"account_id": "CHK-001"}), C("bank_transfer", TRANSFER)],
    True,
    "balance check before transferring",
)
case(
    K,
    ["hotel_search", "weather_forecast", "maps_directions", "hotel_book"],
    [E("hotel_book", {"hotel_id": "H-77", "room_type": "double", "guests": 2})],
    [
        C("hotel_search", HOTEL),
        C("weather_forecast", {"city": "Lisbon", "days": 3}),
        C("maps_directions", {"origin": "LIS airport", "destination": "Hotel Avenida"}),
        C("hotel_book", {"hotel_id": "H-77", "room_type": "double", "guests": 2}),
    ],
    True,
    "three different extra valid calls",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_forecast", {"city": "Paris"})],
    False,
    "the extra call misses required days",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_forecast", {"city": "Paris", "days": 3, "hourly": True})],
    False,
    "the extra call has a made-up argument",
)
case(
    K,
    ["weather_get", "weather_forecast", "message_send"],
    [E("weather_get", PARIS), E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [C("weather_get", PARIS), C("weather_forecast", WF3), C("message_send", {"recipient": "Sam", "body": "Sunny!"})],
    True,
    "two expected calls plus one extra valid call",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_get", {"city": "Paris", "units": "kelvin"})],
    False,
    "the extra call has an out-of-enum unit",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS)],
    [C("weather_forecast", WF3), C("weather_get", {"city": "Lyon"})],
    False,
    "extra calls but the expected call itself was never made",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS), C("weather_get", {"city": "Paris", "units": "celsius"})],
    True,
    "a second call with different arguments (units added) is not a repeat",
)

# ---------------------------------------------------------------- repeated_calls
K = "repeated_calls"
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", PARIS, {"temp": 18}), C("weather_get", PARIS, {"temp": 18})],
    False,
    "identical successful call twice",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS), E("weather_get", {"city": "London"})],
    [C("weather_get", PARIS), C("weather_get", {"city": "London"})],
    True,
    "same tool, two different cities, both expected",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", TRANSFER)],
    [C("bank_transfer", TRANSFER), C("bank_transfer", TRANSFER)],
    False,
    "the same transfer sent twice",
)
case(
    K,
    ["bank_transfer"],
    [E("bank_transfer", TRANSFER)],
    [
        C("bank_transfer", TRANSFER),
        C("bank_transfer", {"currency": "EUR", "amount": 250.0, "to_account": "SAV-002", "from_account": "CHK-001"}),
    ],
    False,
    "same arguments in another key order is still the same call",
)
case(
    K,
    ["stock_quote"],
    [E("stock_quote", {"symbol": "MSFT"})],
    [C("stock_quote", {"symbol": "MSFT"}), C("stock_quote", {"symbol": "GOOG"})],
    True,
    "same tool, different symbol: not a repeat",
)
case(
    K,
    ["orders_search"],
    [E("orders_search", {"customer_email": "kim@x.com"})],
    [C("orders_search", {"customer_email": "kim@x.com"})] * 3,
    False,
    "identical call three times",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS), E("weather_forecast", WF3)],
    [C("weather_get", PARIS), C("weather_forecast", WF3), C("weather_get", PARIS)],
    False,
    "repeat after an intervening call",
)
case(
    K,
    ["message_send"],
    [E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"})],
    [
        C("message_send", {"recipient": "Sam", "body": "Running late"}),
        C("message_send", {"recipient": "Sam", "body": "Be there in 5"}),
    ],
    True,
    "two different messages to the same person",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("weather_get", {"city": "Paris", "unit": "celsius"}), C("weather_get", PARIS)],
    False,
    "the retry is not a repeat, but the first call had a made-up argument",
)
case(
    K,
    ["hotel_search"],
    [E("hotel_search", HOTEL)],
    [C("hotel_search", {**HOTEL, "amenities": ["wifi"]}), C("hotel_search", {**HOTEL, "amenities": ["wifi"]})],
    False,
    "identical call with arrays repeated",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "cabin": "economy"}), C("flights_search", {**FLIGHT, "cabin": "business"})],
    True,
    "two searches differing in cabin: not repeats",
)
case(
    K,
    ["cart_add_item"],
    [E("cart_add_item", {"product_id": "SKU-42", "quantity": 1})],
    [
        C("cart_add_item", {"product_id": "SKU-42", "quantity": 1}),
        C("cart_add_item", {"product_id": "SKU-42", "quantity": 1}),
    ],
    False,
    "item added twice with the same arguments",
)
case(
    K,
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "contact": CONTACT})],
    [
        C("restaurant_reserve", {**RESERVE, "contact": CONTACT}),
        C("restaurant_reserve", {**RESERVE, "contact": CONTACT}),
    ],
    False,
    "the same reservation with nested contact made twice",
)
case(
    K,
    ["calendar_list_events"],
    [E("calendar_list_events", {"date": "2024-03-15"}), E("calendar_list_events", {"date": "2024-03-16"})],
    [C("calendar_list_events", {"date": "2024-03-15"}), C("calendar_list_events", {"date": "2024-03-16"})],
    True,
    "two different days",
)

# ---------------------------------------------------------------- reordered_parallel
K = "reordered_parallel"
LONDON = {"city": "London"}
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS), E("weather_get", LONDON)],
    [C("weather_get", LONDON), C("weather_get", PARIS)],
    True,
    "independent calls in the other order",
)
case(
    K,
    ["hotel_search", "flights_search"],
    [E("hotel_search", HOTEL), E("flights_search", FLIGHT)],
    [C("flights_search", FLIGHT), C("hotel_search", HOTEL)],
    True,
    "flight first, then hotel: no order required",
)
case(
    K,
    ["weather_get"],
    [
        E("weather_get", {"city": "Paris", "units": "celsius"}, {"units": "exact"}),
        E("weather_get", {"city": "London", "units": "fahrenheit"}, {"units": "exact"}),
    ],
    [
        C("weather_get", {"city": "Paris", "units": "fahrenheit"}),
        C("weather_get", {"city": "London", "units": "celsius"}),
    ],
    False,
    "units swapped between the two cities",
)
case(
    K,
    ["stock_quote"],
    [E("stock_quote", {"symbol": "AAPL"}), E("stock_quote", {"symbol": "MSFT"}), E("stock_quote", {"symbol": "GOOG"})],
    [C("stock_quote", {"symbol": "GOOG"}), C("stock_quote", {"symbol": "AAPL"}), C("stock_quote", {"symbol": "MSFT"})],
    True,
    "three calls permuted",
)
case(
    K,
    ["stock_quote"],
    [E("stock_quote", {"symbol": "AAPL"}), E("stock_quote", {"symbol": "MSFT"}), E("stock_quote", {"symbol": "GOOG"})],
    [C("stock_quote", {"symbol": "GOOG"}), C("stock_quote", {"symbol": "AAPL"})],
    False,
    "MSFT never quoted",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS), E("weather_get", LONDON)],
    [C("weather_get", LONDON), C("weather_get", LONDON)],
    False,
    "London twice (a repeat) and Paris never",
)
case(
    K,
    ["currency_convert"],
    [
        E("currency_convert", {"amount": 100, "from_currency": "EUR", "to_currency": "USD"}),
        E("currency_convert", {"amount": 100, "from_currency": "GBP", "to_currency": "USD"}),
    ],
    [
        C("currency_convert", {"amount": 100, "from_currency": "GBP", "to_currency": "USD"}),
        C("currency_convert", {"amount": 100, "from_currency": "EUR", "to_currency": "USD"}),
    ],
    True,
    "two conversions in the other order",
)
case(
    K,
    ["currency_convert"],
    [
        E("currency_convert", {"amount": 100, "from_currency": "EUR", "to_currency": "USD"}),
        E("currency_convert", {"amount": 100, "from_currency": "GBP", "to_currency": "USD"}),
    ],
    [
        C("currency_convert", {"amount": 100, "from_currency": "USD", "to_currency": "GBP"}),
        C("currency_convert", {"amount": 100, "from_currency": "EUR", "to_currency": "USD"}),
    ],
    False,
    "one conversion has from and to swapped",
)
case(
    K,
    ["message_send"],
    [
        E("message_send", {"recipient": "Alice", "body": "x"}, {"body": "any"}),
        E("message_send", {"recipient": "Bob", "body": "x"}, {"body": "any"}),
    ],
    [
        C("message_send", {"recipient": "Bob", "body": "Dinner at 8?"}),
        C("message_send", {"recipient": "Alice", "body": "Dinner at 8?"}),
    ],
    True,
    "messages to Bob then Alice",
)
case(
    K,
    ["bank_get_balance"],
    [E("bank_get_balance", {"account_id": "CHK-001"}), E("bank_get_balance", {"account_id": "SAV-002"})],
    [C("bank_get_balance", {"account_id": "SAV-002"}), C("bank_get_balance", {"account_id": "CHK-001"})],
    True,
    "two balances in the other order",
)
case(
    K,
    ["weather_get", "weather_forecast"],
    [E("weather_get", PARIS), E("weather_get", LONDON)],
    [C("weather_get", LONDON), C("weather_forecast", WF3), C("weather_get", PARIS)],
    True,
    "reordered with an extra valid call between",
)
case(
    K,
    ["weather_get"],
    [E("weather_get", PARIS), E("weather_get", LONDON)],
    [C("weather_get", {"city": "London", "lang": "en"}), C("weather_get", PARIS)],
    False,
    "reordered, but the London call has a made-up argument",
)
case(
    K,
    ["flights_search"],
    [E("flights_search", FLIGHT), E("flights_search", {**FLIGHT, "cabin": "business"}, {"cabin": "exact"})],
    [C("flights_search", {**FLIGHT, "cabin": "business"}), C("flights_search", {**FLIGHT, "cabin": "economy"})],
    True,
    "the business search must go to the second expected call: a greedy first match would miss this",
)
case(
    K,
    ["hotel_search", "flights_search", "weather_forecast"],
    [E("hotel_search", HOTEL), E("flights_search", FLIGHT), E("weather_forecast", {"city": "Lisbon", "days": 5})],
    [C("weather_forecast", {"city": "Lisbon", "days": 5}), C("hotel_search", HOTEL), C("flights_search", FLIGHT)],
    True,
    "three tools, reverse order",
)

# ---------------------------------------------------------------- ordered_after
K = "ordered_after"
KIM = {"customer_email": "kim@x.com"}
CANCEL = {"order_id": "A-1001"}
OS_OC = [E("orders_search", KIM), E("order_cancel", CANCEL, after=[0])]
case(
    K,
    ["orders_search", "order_cancel"],
    OS_OC,
    [C("orders_search", KIM), C("order_cancel", CANCEL)],
    True,
    "search before cancel, as required",
)
case(
    K,
    ["orders_search", "order_cancel"],
    OS_OC,
    [C("order_cancel", CANCEL), C("orders_search", KIM)],
    False,
    "cancel came before the search it depends on",
)
CAL_EV = {"title": "1:1", "start": "2024-03-15T15:00"}
CAL_SEQ = [E("calendar_list_events", {"date": "2024-03-15"}), E("calendar_create_event", CAL_EV, after=[0])]
case(
    K,
    ["calendar_list_events", "calendar_create_event"],
    CAL_SEQ,
    [C("calendar_list_events", {"date": "2024-03-15"}), C("calendar_create_event", CAL_EV)],
    True,
    "checked the day, then created the event",
)
case(
    K,
    ["calendar_list_events", "calendar_create_event"],
    CAL_SEQ,
    [C("calendar_create_event", CAL_EV), C("calendar_list_events", {"date": "2024-03-15"})],
    False,
    "created before checking",
)
CHAIN = [
    E("flights_search", FLIGHT),
    E("flight_book", {"flight_id": "BA178", "passengers": [{"first_name": "Ana", "last_name": "Silva"}]}, after=[0]),
    E("message_send", {"recipient": "Ana", "body": "x"}, {"body": "any"}, after=[1]),
]
BOOK = {"flight_id": "BA178", "passengers": [{"first_name": "Ana", "last_name": "Silva"}]}
MSG = {"recipient": "Ana", "body": "You're booked on BA178"}
case(
    K,
    ["flights_search", "flight_book", "message_send"],
    CHAIN,
    [C("flights_search", FLIGHT), C("flight_book", BOOK), C("message_send", MSG)],
    True,
    "search, book, notify: chain in order",
)
case(
    K,
    ["flights_search", "flight_book", "message_send"],
    CHAIN,
    [C("flights_search", FLIGHT), C("message_send", MSG), C("flight_book", BOOK)],
    False,
    "notified before booking",
)
FREE_C = [
    E("orders_search", KIM),
    E("order_cancel", CANCEL, after=[0]),
    E("weather_get", PARIS),
]
case(
    K,
    ["orders_search", "order_cancel", "weather_get"],
    FREE_C,
    [C("weather_get", PARIS), C("orders_search", KIM), C("order_cancel", CANCEL)],
    True,
    "the unconstrained call may come first",
)
case(
    K,
    ["orders_search", "order_cancel", "weather_get"],
    OS_OC,
    [C("orders_search", KIM), C("weather_get", PARIS), C("order_cancel", CANCEL)],
    True,
    "an extra valid call between the two ordered calls",
)
JOIN = [
    E("weather_forecast", {"city": "Rome", "days": 3}),
    E("hotel_search", {**HOTEL, "city": "Rome"}),
    E("message_send", {"recipient": "Lea", "body": "x"}, {"body": "any"}, after=[0, 1]),
]
JOIN_MSG = {"recipient": "Lea", "body": "Sunny, and the hotel is booked"}
case(
    K,
    ["weather_forecast", "hotel_search", "message_send"],
    JOIN,
    [
        C("hotel_search", {**HOTEL, "city": "Rome"}),
        C("weather_forecast", {"city": "Rome", "days": 3}),
        C("message_send", JOIN_MSG),
    ],
    True,
    "the two prerequisites in either order, then the message",
)
case(
    K,
    ["weather_forecast", "hotel_search", "message_send"],
    JOIN,
    [
        C("weather_forecast", {"city": "Rome", "days": 3}),
        C("message_send", JOIN_MSG),
        C("hotel_search", {**HOTEL, "city": "Rome"}),
    ],
    False,
    "message sent before the hotel search it waits for",
)
BAL_TR = [E("bank_get_balance", {"account_id": "CHK-001"}), E("bank_transfer", TRANSFER, after=[0])]
case(
    K,
    ["bank_get_balance", "bank_transfer"],
    BAL_TR,
    [C("bank_get_balance", {"account_id": "CHK-001"}), C("bank_transfer", TRANSFER)],
    True,
    "balance checked before the transfer",
)
case(
    K,
    ["bank_get_balance", "bank_transfer"],
    BAL_TR,
    [C("bank_transfer", TRANSFER), C("bank_get_balance", {"account_id": "CHK-001"})],
    False,
    "transfer before the balance check",
)
case(
    K,
    ["hotel_search", "hotel_book"],
    [E("hotel_search", HOTEL), E("hotel_book", {"hotel_id": "H-77", "room_type": "double", "guests": 2}, after=[0])],
    [C("hotel_search", HOTEL), C("hotel_book", {"hotel_id": "H-77", "room_type": "double", "guests": 2})],
    True,
    "search then book",
)
case(
    K,
    ["weather_get", "message_send"],
    [E("weather_get", PARIS), E("message_send", {"recipient": "Sam", "body": "x"}, {"body": "any"}, after=[0])],
    [
        C("weather_get", LONDON),
        C("message_send", {"recipient": "Sam", "body": "Looks rainy"}),
        C("weather_get", PARIS),
    ],
    False,
    "the call that precedes the message is London, not the Paris call it must follow",
)

# ---------------------------------------------------------------- from_result
K = "from_result"
ONE_ORDER = {"orders": [{"order_id": "A-1001", "status": "pending"}]}
TWO_ORDERS = {"orders": [{"order_id": "A-1001", "status": "delivered"}, {"order_id": "A-1002", "status": "pending"}]}


def cancel_flow(pointer: str, result: Any, expected_id: str, actual_id: str, accept: bool, note: str) -> None:
    case(
        K,
        ["orders_search", "order_cancel"],
        [
            E("orders_search", KIM),
            E("order_cancel", {"order_id": expected_id}, {"order_id": f"from_result:0#{pointer}"}, after=[0]),
        ],
        [C("orders_search", KIM, result), C("order_cancel", {"order_id": actual_id})],
        accept,
        note,
    )


cancel_flow("/orders/0/order_id", ONE_ORDER, "A-1001", "A-1001", True, "id taken from the search result")
cancel_flow("/orders/0/order_id", ONE_ORDER, "A-1001", "A-1002", False, "A-1002 is not in the result")
cancel_flow("/orders/1/order_id", TWO_ORDERS, "A-1002", "A-1002", True, "second order's id, as the pointer says")
cancel_flow("/orders/1/order_id", TWO_ORDERS, "A-1002", "A-1001", False, "took the first order instead of the second")
cancel_flow("/orders/0/order_id", {"orders": []}, "A-1001", "A-1001", False, "the result has no order: nothing to copy")
cancel_flow("/orders/0/order_id", ONE_ORDER, "A-1001", "A-9999", False, "made-up order id")
cancel_flow(
    "/orders/0/order_id",
    {"orders": [{"order_id": "B-2002"}]},
    "A-1001",
    "B-2002",
    True,
    "the value in the result counts, not the placeholder in the expected call",
)
cancel_flow(
    "/orders/0/order_id",
    {"orders": [{"order_id": "B-2002"}]},
    "A-1001",
    "A-1001",
    False,
    "the placeholder value is not what the result returned",
)
case(
    K,
    ["hotel_search", "hotel_book"],
    [
        E("hotel_search", HOTEL),
        E(
            "hotel_book",
            {"hotel_id": "H-77", "room_type": "double", "guests": 2},
            {"hotel_id": "from_result:0#/hotels/0/hotel_id", "room_type": "exact"},
            after=[0],
        ),
    ],
    [
        C("hotel_search", HOTEL, {"hotels": [{"hotel_id": "H-77", "price": 120}]}),
        C("hotel_book", {"hotel_id": "H-77", "room_type": "double", "guests": 2}),
    ],
    True,
    "hotel id from the search result",
)
case(
    K,
    ["flights_search", "flight_book"],
    [
        E("flights_search", FLIGHT),
        E("flight_book", BOOK | {"flight_id": "AF123"}, {"flight_id": "from_result:0#/flights/0/flight_id"}, after=[0]),
    ],
    [
        C("flights_search", FLIGHT, {"flights": [{"flight_id": "AF123"}, {"flight_id": "AF124"}]}),
        C("flight_book", BOOK | {"flight_id": "AF124"}),
    ],
    False,
    "booked the second flight; the pointer names the first",
)
case(
    K,
    ["weather_get", "orders_search", "order_cancel"],
    [
        E("weather_get", PARIS),
        E("orders_search", KIM),
        E("order_cancel", CANCEL, {"order_id": "from_result:1#/orders/0/order_id"}, after=[1]),
    ],
    [
        C("weather_get", PARIS, {"temp": 18}),
        C("orders_search", KIM, ONE_ORDER),
        C("order_cancel", CANCEL),
    ],
    True,
    "from_result:1 is the second successful call, the search",
)
case(
    K,
    ["bank_list_transactions", "bank_transfer"],
    [
        E("bank_list_transactions", {"account_id": "CHK-001"}),
        E("bank_transfer", TRANSFER | {"amount": 42.5}, {"amount": "from_result:0#/transactions/0/amount"}, after=[0]),
    ],
    [
        C("bank_list_transactions", {"account_id": "CHK-001"}, {"transactions": [{"amount": 42.5, "payee": "Gym"}]}),
        C("bank_transfer", TRANSFER | {"amount": 42.5}),
    ],
    True,
    "a number copied from the result",
)
case(
    K,
    ["crm.contacts.lookup", "crm_update_contact"],
    [
        E("crm.contacts.lookup", {"email": "dana@x.com"}),
        E(
            "crm_update_contact",
            {"contact_id": "C-7", "email": "dana.lee@x.com"},
            {"contact_id": "from_result:0#/contact/id"},
            after=[0],
        ),
    ],
    [
        C("crm.contacts.lookup", {"email": "dana@x.com"}, {"contact": {"id": "C-7", "name": "Dana"}}),
        C("crm_update_contact", {"contact_id": "C-7", "email": "dana.lee@x.com"}),
    ],
    True,
    "nested pointer /contact/id",
)
case(
    K,
    ["currency_convert", "bank_transfer"],
    [
        E("currency_convert", {"amount": 100, "from_currency": "USD", "to_currency": "EUR"}),
        E("bank_transfer", TRANSFER | {"amount": 91.23}, {"amount": "from_result:0#/converted_amount"}, after=[0]),
    ],
    [
        C(
            "currency_convert",
            {"amount": 100, "from_currency": "USD", "to_currency": "EUR"},
            {"converted_amount": 91.23},
        ),
        C("bank_transfer", TRANSFER | {"amount": 91.2}),
    ],
    False,
    "rounded 91.23 to 91.2",
)
case(
    K,
    ["currency_convert", "bank_transfer"],
    [
        E("currency_convert", {"amount": 100, "from_currency": "USD", "to_currency": "EUR"}),
        E("bank_transfer", TRANSFER | {"amount": 91.23}, {"amount": "from_result:0#/converted_amount"}, after=[0]),
    ],
    [
        C(
            "currency_convert",
            {"amount": 100, "from_currency": "USD", "to_currency": "EUR"},
            {"converted_amount": 91.23},
        ),
        C("bank_transfer", TRANSFER | {"amount": 91.23}),
    ],
    True,
    "converted amount copied exactly",
)


# ---------------------------------------------------------------- second pass: edges a rewrite may miss
case(
    "dates",
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "time": "00:00"})],
    [C("restaurant_reserve", {**RESERVE, "time": "12:00 AM"})],
    True,
    "12:00 AM is midnight",
)
case(
    "dates",
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "time": "12:00"})],
    [C("restaurant_reserve", {**RESERVE, "time": "12:00 PM"})],
    True,
    "12:00 PM is noon",
)
case(
    "dates",
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "time": "12:15"})],
    [C("restaurant_reserve", {**RESERVE, "time": "12:15 AM"})],
    False,
    "12:15 AM is 00:15, not 12:15",
)
case(
    "dates",
    ["restaurant_reserve"],
    [E("restaurant_reserve", {**RESERVE, "time": "19:30"})],
    [C("restaurant_reserve", {**RESERVE, "time": "7:30 pm"})],
    True,
    "lower-case pm (casefold)",
)
case(
    "dates",
    ["calendar_create_event"],
    [E("calendar_create_event", {"title": "Call", "start": "2022-01-05T14:30"})],
    [C("calendar_create_event", {"title": "Call", "start": "2022-01-05T14:30:00"})],
    True,
    "explicit zero seconds",
)
K = "dates"
day_case("2022-01-05", "Jan 5, 2022", True, "abbreviated month name with comma")
day_case("2022-01-05", "5 January 2022", True, "day, full month name, year")
day_case("2022-01-05", "January 6, 2022", False, "month-name date, different day")
K = "normalization"
city_case("New York", "New\u00a0York", True, "a no-break space folds to a space under NFKC")
city_case("New York", "New\tYork", True, "a tab is whitespace")
city_case("Room 101", "room 101", True, "letters and digits, case only")
city_case("Paris", "Parris", False, "a typo is a different string")
case(
    "hallucinated_argument",
    ["loyalty_redeem"],
    [E("loyalty_redeem", {"member_id": "M-5", "points": 500})],
    [C("loyalty_redeem", {"member_id": "M-5", "points": 500, "note": "birthday"})],
    False,
    "the schema says additionalProperties: false explicitly",
)
case(
    "integer_float",
    ["cinema_book"],
    [E("cinema_book", {"showtime_id": "S-9", "seats": [12, 13]}, {"seats": "set"})],
    [C("cinema_book", {"showtime_id": "S-9", "seats": [12.0, 13]})],
    False,
    "seat numbers are integers; 12.0 inside the array is a float",
)
case(
    "integer_float",
    ["loyalty_redeem"],
    [E("loyalty_redeem", {"member_id": "M-5", "points": 500})],
    [C("loyalty_redeem", {"member_id": "M-5", "points": 500.0})],
    False,
    "points is an integer",
)
case(
    "array_order",
    ["cinema_book"],
    [E("cinema_book", {"showtime_id": "S-9", "seats": [12, 13]}, {"seats": "set"})],
    [C("cinema_book", {"showtime_id": "S-9", "seats": [13, 12]})],
    True,
    "integer set in another order",
)
case(
    "array_order",
    ["cinema_book"],
    [E("cinema_book", {"showtime_id": "S-9", "seats": [12, 13]}, {"seats": "set"})],
    [C("cinema_book", {"showtime_id": "S-9", "seats": [12, 13, 12]})],
    False,
    "seats must be unique (and the multiset differs)",
)
case(
    "array_order",
    ["recipe_search"],
    [E("recipe_search", {"ingredients": ["rice", "egg"]}, {"ingredients": "set"})],
    [C("recipe_search", {"ingredients": ["rice", "egg", "rice"]})],
    False,
    "same set of names but a different multiset (rice twice)",
)
case(
    "wrong_value",
    ["stock_quote"],
    [E("stock_quote", {"symbol": "AAPL"}, {"symbol": "exact"})],
    [C("stock_quote", {"symbol": "aapl"})],
    False,
    "exact means identical: aapl is not AAPL",
)
case(
    "wrong_value",
    ["flights_search"],
    [E("flights_search", {**FLIGHT, "nonstop": True}, {"nonstop": "exact"})],
    [C("flights_search", {**FLIGHT, "nonstop": "true"})],
    False,
    "the string true is not a boolean: invalid",
)
case(
    "wrong_value",
    ["flights_search"],
    [E("flights_search", {**FLIGHT, "nonstop": True}, {"nonstop": "exact"})],
    [C("flights_search", {**FLIGHT, "nonstop": 1})],
    False,
    "1 is not a boolean: invalid",
)
case(
    "optional_argument",
    ["flights_search"],
    [E("flights_search", FLIGHT)],
    [C("flights_search", {**FLIGHT, "cabin": "Economy"})],
    False,
    "enum values are case-sensitive in the schema: Economy is not economy",
)
case(
    "from_result",
    ["orders_search", "order_cancel"],
    [E("orders_search", KIM), E("order_cancel", CANCEL, {"order_id": "from_result:1#/orders/0/order_id"})],
    [C("orders_search", KIM, ONE_ORDER), C("order_cancel", CANCEL)],
    False,
    "from_result:1 names the second successful call, which is the cancel itself, not the search",
)
case(
    "from_result",
    ["orders_search", "order_cancel"],
    [E("orders_search", KIM), E("order_cancel", CANCEL, {"order_id": "from_result:0#/orders/0/order_id"})],
    [C("orders_search", KIM, {"orders": [{"id": "A-1001"}]}), C("order_cancel", CANCEL)],
    False,
    "the result has /orders/0/id, not /orders/0/order_id: nothing at the pointer",
)
case(
    "unknown_tool",
    ["weather_get"],
    [E("weather_get", PARIS)],
    [C("", PARIS), C("weather_get", PARIS)],
    False,
    "a call with an empty tool name is to no offered tool",
)
case(
    "missing_required",
    ["cinema_book"],
    [E("cinema_book", {"showtime_id": "S-9", "seats": [12]})],
    [C("cinema_book", {"showtime_id": "S-9", "seats": []})],
    False,
    "seats needs at least one item",
)
case(
    "repeated_calls",
    ["cinema_book"],
    [E("cinema_book", {"showtime_id": "S-9", "seats": [12, 13]}, {"seats": "set"})],
    [
        C("cinema_book", {"showtime_id": "S-9", "seats": [12, 13]}),
        C("cinema_book", {"showtime_id": "S-9", "seats": [14]}),
    ],
    True,
    "a second booking for another seat is a different call (an extra, not a repeat)",
)


def main() -> None:
    """Assign ids per class and write one JSON object per line."""
    counts: Counter[str] = Counter()
    lines = []
    for item in CASES:
        counts[item["class"]] += 1
        lines.append(json.dumps({"id": f"{item['class']}-{counts[item['class']]:03d}", **item}, ensure_ascii=False))
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} cases -> {OUT}")
    for name, count in sorted(counts.items()):
        accepts = sum(1 for item in CASES if item["class"] == name and item["accept"])
        print(f"  {name:30s} {count:3d}  accept {accepts:2d}  reject {count - accepts:2d}")


if __name__ == "__main__":
    main()
