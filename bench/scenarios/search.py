"""Patient search over `--search-patients` patients of one clinic, as a doctor of that clinic.

The patients: names drawn with a skewed (Zipf-like) frequency from lists of given and family
names of several languages, accented ones included (the commonest family name is about 2 % of
the patients); a unique MRN and phone number each. Their read-model rows are made by the
patients projection's own `row_values` from a registration event, and bulk-inserted: the search
reads only `patient_read_model`, so the event log is left empty (writing 100,000 registrations
through the service would take minutes and measure nothing more here).

The searches, `--searches` of them, cycle through six kinds: a family name as stored, a family
name without its accents, a family name with a typo (one letter dropped or two swapped), given
and family name, an exact MRN, and a phone number as typed. On PostgreSQL names go through pg_trgm
and unaccent (the trigram GIN index on the stored unaccented name; a typo first through the edit
distance to the name words of `patient_name_word`), MRN and phone through their btree indexes; on
SQLite through the substring fallback (no typo or accent tolerance, no phone).
Each search counts every match (the mean is in the figures) and reads the first page of 20.

Each `patients.queries.search_patients(ctx, q)` call (count + first page of 20) is paired with
the same statements through the plain driver: they are captured from the call once, untimed,
then replayed. Each pair alternates which one goes first.
"""

import random
import unicodedata
from collections import Counter
from datetime import UTC, date, datetime
from uuid import uuid4

from django.db import connection

from bench.options import Workload
from bench.progress import progress, say
from bench.scenarios import raw
from bench.stats import latency_summary, now_ns
from medflow.context import Context
from medflow.eventstore.store import RecordedEvent
from medflow.patients.domain import Patient, PatientRegistered
from medflow.patients.models import PatientReadModel
from medflow.patients.projections import row_values
from medflow.patients.queries import search_patients

WARMUP = 20
KINDS = ("family", "unaccented", "typo", "full_name", "mrn", "phone")

def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


GIVEN = _names(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara"
    " Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony"
    " Margaret Mark Sandra Donald Ashley Steven Emily Paul Donna Andrew Michelle Joshua Carol"
    " Kenneth Amanda Kevin Melissa Brian Deborah José María Jesús Lucía Álvaro Inés Ramón Begoña"
    " Sofía Adrián Jürgen Jörg Käthe Günter Björn Sören Ólafur Åsa Zoë Chloé Hélène Agnès Jérôme"
    " Thérèse Loïc Noël Renée Élodie François Gaël Maëlle Łukasz Paweł Małgorzata Wojciech Zoltán"
    " Dóra István Tomáš Jiří Kateřina Nguyễn Thảo Minh Aoife Siobhán Seán Niamh Eóin Ana João"
    " Conceição Gonçalo Ayşe Çağla Oğuz Ahmed Fatima Yusuf Aisha Omar Leila Hiroshi Yuki Wei Mei"
)

FAMILY = _names(
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin"
    " Jackson Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott"
    " Hill Green Adams Baker Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans"
    " Edwards Collins Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson Bailey Reed Kelly"
    " Howard Cox Ward Richardson Watson Brooks Wood James Bennett Gray Hughes Price Sanders"
    " García Rodríguez Martínez Hernández López González Pérez Sánchez Ramírez Gómez Díaz"
    " Muñoz Jiménez Álvarez Romero Gutiérrez Núñez Peña Ibáñez Müller Schröder Schäfer"
    " Köhler Günther Weiß Groß Böhm Krüger Lefèvre Bérénger Céline Dupré Mérieux Rivière"
    " Lemaître Gaëtan Benoît Chrétien Fournier Mercier Laurent Søgaard Jørgensen Ørsted Åberg"
    " Lindström Öberg Håkansson Wiśniewski Dąbrowski Wójcik Kamiński Lewandowski Zieliński"
    " Nowak Kowalczyk Dvořák Novák Svoboda Horváth Szabó Kovács Tóth Nagy Nguyễn Trần Lê Phạm"
    " Hoàng Ó'Súilleabháin Ní Dhomhnaill Mac Gearailt Gonçalves Conceição Simões Magalhães Özdemir"
    " Kaya Demir Şahin Çelik Öztürk Tanaka Suzuki Watanabe Yamamoto Nakamura Kobayashi Wang"
    " Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Khan Ali Hussain Rahman Ahmed Begum Okafor"
    " Adeyemi Mensah Nkosi Haddad Nasser Khoury Papadopoulos Georgiou Rossi Russo Ferrari"
    " Esposito Bianchi Romano Colombo Ricci Marino Greco"
)


def _skewed(names: tuple[str, ...], rng: random.Random, count: int) -> list[str]:
    # A few names are common and most are rare, as in a real register (weight 1 / (rank + 20)):
    # the commonest family name is about 2 % of the patients (Smith is about 0.8 % of the US).
    weights = [1 / (rank + 20) for rank in range(len(names))]
    order = list(names)
    rng.shuffle(order)
    return rng.choices(order, weights=weights, k=count)


def _unaccented(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(ch))


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 5:
        return word
    at = rng.randrange(1, len(word) - 1)
    if rng.random() < 0.5:
        return word[:at] + word[at + 1:]  # a letter dropped
    return word[:at] + word[at + 1] + word[at] + word[at + 2:]  # two letters swapped


def build_patients(count: int, clinic_id) -> list[dict]:
    """Insert `count` read-model rows of one clinic, made by the projection's row_values."""
    rng = random.Random(42)
    givens = _skewed(GIVEN, rng, count)
    families = _skewed(FAMILY, rng, count)
    now = datetime.now(UTC)
    people = []
    batch: list[PatientReadModel] = []
    for index in progress(range(count), total=count, desc="patients"):
        patient_id = uuid4()
        event = PatientRegistered(
            clinic_id=clinic_id, mrn=f"MRN-{index:07d}", given_names=givens[index],
            family_name=families[index], birth_date=date(1930 + index % 90, 1 + index % 12, 1),
            phone=f"+1 {200 + index % 700:03d} {index:07d}",
        )
        patient = Patient(patient_id)
        patient.when(event)
        recorded = RecordedEvent(
            id=uuid4(), position=index + 1, aggregate_id=patient_id, aggregate_type="Patient",
            event_type="PatientRegistered", version=1, timestamp=now, metadata={}, event=event,
        )
        batch.append(PatientReadModel(id=patient_id, **row_values(patient.state(), recorded)))
        people.append({"given": givens[index], "family": families[index],
                       "mrn": f"MRN-{index:07d}", "phone": event.phone})
        if len(batch) == 1000:
            PatientReadModel.objects.bulk_create(batch)
            batch = []
    if batch:
        PatientReadModel.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE patient_read_model")
    return people


def queries(people: list[dict], count: int) -> list[tuple[str, str]]:
    """Return `count` (kind, query) pairs cycling through KINDS, for random patients."""
    rng = random.Random(5)
    out = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        person = rng.choice(people)
        family = person["family"]
        text = {
            "family": family,
            "unaccented": _unaccented(family),
            "typo": _typo(family.lower(), rng),
            "full_name": f"{person['given']} {family}",
            "mrn": person["mrn"],
            "phone": str(person["phone"]),
        }[kind]
        out.append((kind, text))
    return out


def run(workload: Workload) -> dict:
    """Fill the read model, then time the searches and their plain-driver replays."""
    clinic_id = uuid4()
    say(f"    {workload.search_patients:,} patients in the read model ...")
    people = build_patients(workload.search_patients, clinic_id)
    ctx = Context(user_id=1, username="bench-doctor", role="doctor",
                  clinic_ids=frozenset({clinic_id}))
    asked = queries(people, WARMUP + workload.searches)
    samples: dict[str, list[int]] = {}
    matches: dict[str, list[int]] = {}
    for index, (kind, text) in enumerate(progress(asked, total=len(asked), desc="searches")):
        statements = raw.captured(search_patients, ctx, text)
        got = {}
        for name in (("medflow", "raw") if index % 2 == 0 else ("raw", "medflow")):
            if name == "raw":
                got[name] = raw.replay(statements)
                continue
            start = now_ns()
            total, _page = search_patients(ctx, text)
            got[name] = now_ns() - start
        if index >= WARMUP:
            for name, value in got.items():
                samples.setdefault(f"{name}:{kind}", []).append(value)
                samples.setdefault(f"{name}:all", []).append(value)
            matches.setdefault(kind, []).append(total)

    def summary(name: str, kind: str) -> dict:
        return latency_summary(samples[f"{name}:{kind}"])

    figures = {
        "search_all": {
            "call": "patients.queries.search_patients(doctor of the clinic, q): count + page of 20",
            "patients": workload.search_patients, "searches": workload.searches,
            "kinds": list(KINDS),
            "commonest_family_name_share": round(
                max(Counter(p["family"] for p in people).values()) / len(people), 4),
            **summary("medflow", "all"),
        },
        "raw_search_all": {
            "statement": "the same statements, captured once, replayed (plain driver)",
            **summary("raw", "all"),
        },
    }
    for kind in KINDS:
        found = matches[kind]
        figures[f"search_{kind}"] = {
            **summary("medflow", kind),
            "matches_mean": round(sum(found) / len(found), 1),
            "found_none": sum(1 for n in found if n == 0),
        }
        figures[f"raw_search_{kind}"] = summary("raw", kind)
    return figures
