"""Simulate MHSDS-shaped site extracts from :class:`~pcref_eval.synth.model.SimulationModel`.

``generate(out_dir, ...)`` writes ``out_dir/<site_id>/`` (tables, ``site.yml``,
``population.csv``) and ``out_dir/truth.json``. Each site has its own random stream
(``numpy.random.default_rng([seed, site_index])``), so the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pcref_eval.ethnicity import ETHNIC_CATEGORIES
from pcref_eval.synth.calendar import (SiteCalendar, SiteEffect, average_effect_on_treated,
                                      focus_person_days_by_event_month, site_parameters)
from pcref_eval.synth.faults import inject_faults
from pcref_eval.synth.model import FOCUS_GROUPS, SIM_GROUP, SimulationModel, SiteSpec, default_sites

DAYS_PER_YEAR = 365.25
AGE_BANDS = [f"{lo}-{lo + 4}" for lo in range(0, 90, 5)] + ["90+"]
AGE_BAND_WEIGHTS = np.array([6, 6, 6, 6, 6.5, 7, 7, 6.5, 6.5, 6.5, 7, 6.5, 5.5, 5, 4.5, 3.5, 2.5, 1.5, 0.8])
TABLES = [
    "people", "referrals", "mha_episodes", "hospital_spells",
    "restrictive_interventions", "ctos", "outcome_measures", "patient_experience",
]


def generate(
    out_dir: str | Path,
    n_sites: int = 4,
    people: int = 100_000,
    seed: int = 2024,
    faults: bool = False,
    fmt: str = "csv",
    model: SimulationModel | None = None,
    workers: int | None = None,
) -> dict:
    """Write synthetic site extracts and ``truth.json`` to ``out_dir``; return the truth dict.

    Sites are simulated in parallel processes (``workers``; default: one per core for 200,000 people
    or more, else one). Each site has its own random stream, so the files do not depend on ``workers``.
    """
    model = model or SimulationModel()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth: dict = {"seed": seed, "n_sites": n_sites, "people": people, "format": fmt,
                   "faults_injected": faults, "model": model.to_dict(), "sites": {}}
    specs = default_sites(people, n_sites)
    effects = site_parameters(len(specs), model, seed)
    jobs = [(out, i, spec, model, seed, faults, fmt, eff) for i, (spec, eff) in enumerate(zip(specs, effects))]
    workers = _default_workers(people, n_sites) if workers is None else max(1, min(workers, n_sites))
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=workers) as pool:
            summaries = list(pool.map(_generate_site, jobs))
    else:
        summaries = [_generate_site(job) for job in jobs]
    for spec, summary in zip(specs, summaries):
        truth["sites"][spec.site_id] = {"spec": _spec_dict(spec), **summary}
    truth["attribution"] = attribution_truth(truth["sites"])
    (out / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return truth


def _generate_site(job) -> dict:
    """Simulate and write one site (a top-level function, so a process pool can run it)."""
    out, i, spec, model, seed, faults, fmt, effect = job
    rng = np.random.default_rng([seed, i])
    tables, population, summary = simulate_site(spec, model, rng, effect)
    if faults:
        summary["faults"] = inject_faults(tables, spec, model, np.random.default_rng([seed, i, 1]))
    write_site(out / spec.site_id, spec, model, tables, population, fmt)
    return summary


def _default_workers(people: int, n_sites: int) -> int:
    import os
    if people < 200_000 or n_sites < 2:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_sites))


def attribution_truth(sites: dict) -> dict:
    """The average PCREF effect on the treated over all sites (focus person-days at risk as weights)."""
    effects = {s: {int(k): v for k, v in t["pcref"]["effect_by_event_month"].items()} for s, t in sites.items()}
    weights = {s: {int(k): v for k, v in t["pcref"]["focus_person_days_by_event_month"].items()}
               for s, t in sites.items()}
    return {
        "att_detention_hazard": average_effect_on_treated(effects, weights),
        "definition": "exp of the mean log PCREF effect on the focus-group detention hazard over site x event "
                      "months after go-live (to the extract date), weighted by focus-group person-days at risk "
                      "of a first detention after the index referral",
    }


def default_site_effect(model: SimulationModel) -> SiteEffect:
    """A site with the model's median effect, ramp and no drift (when no site parameters are given)."""
    return SiteEffect(model.implementation_effect, model.implementation_ramp_months, 0.0)


def simulate_site(spec: SiteSpec, model: SimulationModel, rng: np.random.Generator, effect: SiteEffect | None = None,
                  cohort_tables_only: bool = False):
    """Simulate one site's tables; return (tables, population, summary of true counts).

    ``cohort_tables_only`` (simulation study) stops after the tables the detention cohort needs
    (people, referrals, MHA episodes); those are drawn first, so they are the same either way.
    """
    calendar = SiteCalendar(spec, model, effect or default_site_effect(model))
    population = catchment_population(spec, rng)
    people = sample_people(spec, model, population, rng)
    referrals, index = simulate_referrals(people, spec, model, rng)
    people["ethnic_category"] = recorded_ethnicity(
        people["true_ethnic_category"].to_numpy(), index["index_day"].to_numpy(), spec, model, rng)
    follow = simulate_follow_up(people, index, spec, model, rng)
    people["date_of_death"] = follow["death_date"]
    referrals = drop_referrals_after_death(referrals, people)
    detentions = simulate_detentions(people, index, follow, calendar, model, rng)
    mha, spells, ctos = detention_records(people, detentions, follow, spec, model, rng)
    s136 = simulate_place_of_safety(people, index, follow, model, rng)
    informal = simulate_informal_spells(people, follow, spec, model, rng, start_id=len(spells))
    spells = pd.concat([spells, informal], ignore_index=True)
    mha = pd.concat([mha, s136], ignore_index=True).sort_values(["start_date", "episode_id"], kind="stable")
    mha["episode_id"] = [f"{spec.site_id.upper()}-MHA{i:07d}" for i in range(len(mha))]
    if cohort_tables_only:
        summary = {"pcref": site_pcref_truth(people, detentions, follow, calendar, model)}
        return {"people": people[["person_id", "ethnic_category", "gender", "year_of_birth", "imd_decile",
                                  "date_of_death"]], "referrals": referrals, "mha_episodes": mha.reset_index(drop=True)
                }, population, summary
    restrictive = simulate_restrictive_interventions(people, spells, spec, model, rng)
    outcomes = simulate_outcome_measures(people, referrals, index, follow, model, rng)
    experience = simulate_patient_experience(people, index, spec, model, rng)
    tables = {
        "people": people[["person_id", "ethnic_category", "gender", "year_of_birth", "imd_decile", "date_of_death"]],
        "referrals": referrals,
        "mha_episodes": mha.reset_index(drop=True),
        "hospital_spells": spells[["spell_id", "person_id", "admission_date", "discharge_date"]],
        "restrictive_interventions": restrictive,
        "ctos": ctos,
        "outcome_measures": outcomes,
        "patient_experience": experience,
    }
    summary = {
        "rows": {k: int(len(v)) for k, v in tables.items()},
        "first_detentions": int(detentions.loc[detentions["seq"] == 1].shape[0]),
        "detentions": int(len(detentions)),
        "deaths_in_follow_up": int(follow["died"].sum()),
        "ethnicity_recorded_share": float(people["ethnic_category"].isin(list(ETHNIC_CATEGORIES)).mean()),
        "pcref": site_pcref_truth(people, detentions, follow, calendar, model),
    }
    return tables, population, summary


def site_pcref_truth(people, detentions, follow, calendar: SiteCalendar, model: SimulationModel) -> dict:
    """True PCREF effect by event month and the focus-group person-days at risk that weight it."""
    extract = _day(model.extract_date)
    exit_rel = follow["end"].to_numpy().copy()
    first = detentions[detentions["seq"] == 1]
    exit_rel[first["row"].to_numpy()] = first["t"].to_numpy()
    focus = people["focus"].to_numpy()
    entry = follow["index_day"].to_numpy()[focus]
    weights = focus_person_days_by_event_month(calendar, entry, entry + np.ceil(exit_rel[focus]), extract)
    return {
        "go_live": str(_dates(pd.Series([calendar.go_live_day]))[0]),
        "full_effect": calendar.effect.full_effect,
        "ramp_months": calendar.effect.ramp_months,
        "gap_drift_per_year": calendar.effect.gap_drift_per_year,
        "effect_by_event_month": {str(k): v for k, v in calendar.effect_by_event_month(extract).items()},
        "focus_person_days_by_event_month": {str(k): v for k, v in weights.items()},
    }


def catchment_population(spec: SiteSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Catchment population by ethnic category, age band and sex (the rate denominators)."""
    mix = ethnic_mix(spec)
    age = AGE_BAND_WEIGHTS / AGE_BAND_WEIGHTS.sum()
    cells = [(code, band, sex, spec.catchment * share * a * 0.5)
             for code, share in mix.items() for band, a in zip(AGE_BANDS, age) for sex in ("1", "2")]
    pop = pd.DataFrame(cells, columns=["ethnic_category", "age_band", "sex", "expected"])
    pop["population"] = rng.poisson(pop.pop("expected")).astype(int)
    return pop


def ethnic_mix(spec: SiteSpec) -> dict[str, float]:
    """Catchment share of each detailed ethnic category for a site's Black and Asian shares."""
    b, a = spec.black_share, spec.asian_share
    mix = {"M": 0.36 * b, "N": 0.42 * b, "P": 0.10 * b, "D": 0.07 * b, "E": 0.05 * b,
           "H": 0.40 * a, "J": 0.30 * a, "K": 0.15 * a, "L": 0.15 * a,
           "F": 0.008, "G": 0.006, "R": 0.007, "S": 0.015, "B": 0.01, "C": 0.06}
    mix["A"] = 1.0 - sum(mix.values())
    return {code: mix[code] for code in ETHNIC_CATEGORIES}


def sample_people(spec: SiteSpec, model: SimulationModel, population: pd.DataFrame, rng) -> pd.DataFrame:
    """Sample adults in contact with services, weighting catchment cells by contact-rate ratio."""
    lo = population["age_band"].str.extract(r"^(\d+)")[0].astype(int)
    adult = lo >= 15
    group = population["ethnic_category"].map(SIM_GROUP)
    age_factor = np.where(lo >= 65, 0.6, 1.0) * np.where(lo == 15, 0.4, 1.0)  # 15-19 band: only 18-19
    weight = population["population"] * adult * age_factor * group.map(model.contact_rate_ratio)
    cell = rng.choice(len(population), size=spec.people, p=(weight / weight.sum()).to_numpy())
    chosen = population.iloc[cell].reset_index(drop=True)
    band_lo = lo.iloc[cell].to_numpy()
    age = np.where(band_lo == 15, 18 + rng.uniform(0, 2, spec.people), band_lo + rng.uniform(0, 5, spec.people))
    age = np.where(band_lo == 90, 90 + rng.exponential(3, spec.people), age)
    people = pd.DataFrame({
        "person_id": [f"{spec.site_id[-1].upper()}{n:08d}" for n in rng.permutation(spec.people) + 10_000_000],
        "true_ethnic_category": chosen["ethnic_category"].to_numpy(),
        "age": age,
    })
    people["sim_group"] = people["true_ethnic_category"].map(SIM_GROUP)
    people["focus"] = people["sim_group"].isin(FOCUS_GROUPS)
    people["gender"] = assign_gender(chosen["sex"].to_numpy(), model, rng)
    people["male"] = people["gender"] == "1"
    imd = np.rint(rng.normal(spec.imd_mean - 1.2 * people["focus"], 2.0)).clip(1, 10).astype(int)
    people["imd"] = imd
    people["imd_decile"] = pd.array(np.where(rng.random(spec.people) < 0.02, pd.NA, imd), dtype="Int64")
    return people


def assign_gender(sex: np.ndarray, model: SimulationModel, rng) -> np.ndarray:
    """Gender code: mostly the catchment cell's sex, with small non-binary/other/indeterminate shares."""
    other = {k: v for k, v in model.gender_shares.items() if k not in ("1", "2")}
    draw = rng.random(len(sex))
    out = sex.astype(object).copy()
    cum = 0.0
    for code, share in other.items():
        out[(draw >= cum) & (draw < cum + share)] = code
        cum += share
    return out


def simulate_referrals(people, spec, model, rng):
    """Index referral (uniform over the window), optional prior and second referrals."""
    n = len(people)
    w0, w1, extract = (_day(model.window_start), _day(model.window_end), _day(model.extract_date))
    index_day = rng.integers(w0, w1 + 1, n)
    duration = np.ceil(rng.exponential(model.referral_mean_duration_days, n)).astype(int)
    discharge = index_day + duration
    people["year_of_birth"] = (1970 + (index_day / DAYS_PER_YEAR) - people["age"]).astype(int)  # day 0 = 1970-01-01
    source = referral_sources(people["focus"].to_numpy(), model, rng)
    index = pd.DataFrame({"person_id": people["person_id"], "index_day": index_day,
                          "discharge_day": np.where(discharge <= extract, discharge, -1), "source": source})
    prior = rng.random(n) < model.prior_referral_share
    prior_day = rng.integers(w0 - 730, w0 - 60, n)
    prior_dis = np.minimum(prior_day + rng.integers(20, 300, n), w0 - 1)
    second = (rng.random(n) < model.second_referral_share) & (index["discharge_day"] > 0)
    second_day = index["discharge_day"].to_numpy() + rng.integers(30, 400, n)
    second &= second_day <= w1
    parts = [
        pd.DataFrame({"person_id": people["person_id"][prior], "rday": prior_day[prior], "dday": prior_dis[prior],
                      "source_of_referral": source[prior]}),
        pd.DataFrame({"person_id": people["person_id"], "rday": index_day, "dday": index["discharge_day"],
                      "source_of_referral": source}),
        pd.DataFrame({"person_id": people["person_id"][second], "rday": second_day[second], "dday": -1,
                      "source_of_referral": source[second]}),
    ]
    ref = pd.concat(parts, ignore_index=True).sort_values(["rday", "person_id"], kind="stable").reset_index(drop=True)
    ref["referral_id"] = [f"{spec.site_id.upper()}-R{i:08d}" for i in range(len(ref))]
    ref["referral_date"] = _dates(ref["rday"])
    ref["discharge_date"] = _dates(ref["dday"].where(ref["dday"] > 0))
    index = index.merge(ref.loc[ref["rday"].isin(index_day), ["person_id", "rday", "referral_id"]],
                        left_on=["person_id", "index_day"], right_on=["person_id", "rday"], how="left")
    return ref[["referral_id", "person_id", "referral_date", "source_of_referral", "discharge_date"]], index


def drop_referrals_after_death(referrals: pd.DataFrame, people: pd.DataFrame) -> pd.DataFrame:
    """Remove (second) referrals dated after the person's death (ISO date strings compare in order)."""
    death = referrals["person_id"].map(people.set_index("person_id")["date_of_death"])
    after = (death != "") & (referrals["referral_date"] > death)
    return referrals[~after].reset_index(drop=True)


def referral_sources(focus: np.ndarray, model, rng) -> np.ndarray:
    """Source of referral drawn from the reference or focus group's category shares."""
    out = np.empty(len(focus), dtype=object)
    for key, mask in (("reference", ~focus), ("focus", focus)):
        shares = model.referral_source_shares[key]
        codes, p = list(shares), np.array(list(shares.values()))
        out[mask] = rng.choice(codes, size=int(mask.sum()), p=p / p.sum())
    return out


def simulate_follow_up(people, index, spec, model, rng) -> pd.DataFrame:
    """Death (competing event) and censoring (discharge or extract date), in days from the index referral."""
    n = len(people)
    extract = _day(model.extract_date)
    rate = model.death_rate_per_year_at_40 * np.exp(model.log_death_hr_per_decade * (people["age"] - 40) / 10)
    t_death = np.ceil(rng.exponential(DAYS_PER_YEAR / rate.to_numpy(), n))
    index_day = index["index_day"].to_numpy()
    death_day = index_day + t_death
    dis = index["discharge_day"].to_numpy()
    censor = np.where(dis > 0, dis, extract) - index_day
    died = t_death <= censor
    return pd.DataFrame({
        "censor": censor.astype(float),
        "t_death": t_death,
        "died": died,
        "end": np.minimum(censor, t_death),
        "death_date": _dates(pd.Series(np.where(death_day <= extract, death_day, np.nan))),
        "index_day": index_day,
    })


def detention_hazard_per_day(people, model) -> np.ndarray:
    """Pre-go-live detention hazard per day: base x group HR x age, sex and deprivation effects."""
    lin = (model.log_hr_age_per_decade * (people["age"] - 40) / 10
           + model.log_hr_male * people["male"]
           + model.log_hr_imd_per_decile_more_deprived * (5.5 - people["imd"]))
    hr = people["sim_group"].map(model.detention_hr).to_numpy()
    return model.base_detention_rate_per_year / DAYS_PER_YEAR * hr * np.exp(lin.to_numpy())


def simulate_detentions(people, index, follow, calendar: SiteCalendar, model, rng,
                        max_detentions: int = 3) -> pd.DataFrame:
    """First and repeat detentions: hazard x calendar multiplier, drawn by inverting the cumulative hazard."""
    h = detention_hazard_per_day(people, model)
    focus = people["focus"].to_numpy()
    index_day = follow["index_day"].to_numpy().astype(float)
    end = follow["end"].to_numpy()
    start = np.zeros(len(people))
    active = np.ones(len(people), dtype=bool)
    rows = []
    for seq in range(1, max_detentions + 1):
        e = rng.exponential(1.0, len(people))
        t = calendar.event_day(index_day + start, h, focus, e) - index_day
        t = np.maximum(np.ceil(t), start)
        hit = active & (t < end)
        los = np.ceil(rng.gamma(1.5, model.mean_los_days / 1.5, len(people)))
        rows.append(pd.DataFrame({"row": np.flatnonzero(hit), "seq": seq, "t": t[hit], "los": los[hit]}))
        start = np.where(hit, t + los, start)
        active = hit & (start < end)
    det = pd.concat(rows, ignore_index=True)
    det["focus"] = focus[det["row"]]
    return det


def detention_records(people, det, follow, spec, model, rng):
    """MHA episodes (s2, s3, s2 then s3, criminal justice), their hospital spells and CTOs."""
    extract = _day(model.extract_date)
    row = det["row"].to_numpy()
    index_day = follow["index_day"].to_numpy()[row]
    start = index_day + det["t"].to_numpy().astype(int)
    death = index_day + follow["t_death"].to_numpy()[row]
    discharge = np.minimum(start + det["los"].to_numpy().astype(int), death).astype(int)
    n = len(det)
    focus = det["focus"].to_numpy()
    cj = rng.random(n) < np.where(focus, model.criminal_justice_share["focus"], model.criminal_justice_share["reference"])
    s3 = ~cj & (rng.random(n) < model.s3_share)
    code = np.where(cj, "09", np.where(s3, "03", "02"))
    s2_end = np.minimum(start + 28, discharge)
    then_s3 = ((code == "02") & (discharge > start + 28) & (start + 28 <= extract)
               & (rng.random(n) < model.s2_to_s3_share))
    first_end = np.where(code == "02", s2_end, discharge)
    pid = people["person_id"].to_numpy()[row]
    episodes = pd.concat([
        pd.DataFrame({"person_id": pid, "legal_status_code": code, "sday": start, "eday": first_end}),
        pd.DataFrame({"person_id": pid[then_s3], "legal_status_code": "03", "sday": s2_end[then_s3],
                      "eday": discharge[then_s3]}),
    ], ignore_index=True)
    mha = pd.DataFrame({
        "episode_id": "", "person_id": episodes["person_id"], "legal_status_code": episodes["legal_status_code"],
        "start_date": _dates(episodes["sday"]), "end_date": _dates(episodes["eday"].where(episodes["eday"] <= extract)),
    })
    spells = pd.DataFrame({
        "spell_id": [f"{spec.site_id.upper()}-S{i:07d}" for i in range(n)], "person_id": pid,
        "aday": start, "dday": discharge, "focus": focus,
        "admission_date": _dates(pd.Series(start)),
        "discharge_date": _dates(pd.Series(np.where(discharge <= extract, discharge, np.nan))),
    })
    on_s3 = (code == "03") | then_s3
    cto_p = np.where(focus, model.cto_prob_after_s3["focus"], model.cto_prob_after_s3["reference"])
    cto = on_s3 & (rng.random(n) < cto_p) & (discharge < np.minimum(death, extract))
    cto_end = discharge + rng.integers(180, 540, n)
    cto_end = np.minimum(cto_end, death)
    ended = cto & (cto_end <= extract)
    revoked = rng.random(n) < model.cto_revoked_share
    ctos = pd.DataFrame({
        "person_id": pid[cto], "start_date": _dates(pd.Series(discharge[cto])),
        "end_date": _dates(pd.Series(np.where(ended, cto_end, np.nan)[cto])),
        "end_reason": np.where(ended, np.where(revoked, "02", "01"), "")[cto],
    })
    ctos.insert(0, "cto_id", [f"{spec.site_id.upper()}-C{i:06d}" for i in range(len(ctos))])
    return mha, spells, ctos


def simulate_place_of_safety(people, index, follow, model, rng) -> pd.DataFrame:
    """Section 136 place-of-safety holds: a Poisson process over follow-up, rate by group."""
    rate = np.where(people["focus"], model.s136_rate_per_year["focus"], model.s136_rate_per_year["reference"]) / DAYS_PER_YEAR
    end = follow["end"].to_numpy()
    k = rng.poisson(rate * end)
    row = np.repeat(np.arange(len(people)), k)
    day = follow["index_day"].to_numpy()[row] + np.floor(rng.random(len(row)) * end[row]).astype(int)
    return pd.DataFrame({"episode_id": "", "person_id": people["person_id"].to_numpy()[row], "legal_status_code": "20",
                         "start_date": _dates(pd.Series(day)), "end_date": _dates(pd.Series(day + 1))})


def simulate_informal_spells(people, follow, spec, model, rng, start_id: int) -> pd.DataFrame:
    """Informal (voluntary) admissions for a share of people, within follow-up."""
    extract = _day(model.extract_date)
    end = follow["end"].to_numpy()
    pick = (rng.random(len(people)) < model.informal_admission_share) & (end > 2)
    row = np.flatnonzero(pick)
    start = follow["index_day"].to_numpy()[row] + np.floor(rng.random(len(row)) * (end[row] - 1)).astype(int)
    death = follow["index_day"].to_numpy()[row] + follow["t_death"].to_numpy()[row]
    dis = np.minimum(start + np.ceil(rng.gamma(1.5, 20.0, len(row))), death).astype(int)
    return pd.DataFrame({
        "spell_id": [f"{spec.site_id.upper()}-S{start_id + i:07d}" for i in range(len(row))],
        "person_id": people["person_id"].to_numpy()[row], "aday": start, "dday": dis,
        "focus": people["focus"].to_numpy()[row],
        "admission_date": _dates(pd.Series(start)),
        "discharge_date": _dates(pd.Series(np.where(dis <= extract, dis, np.nan))),
    })


def simulate_restrictive_interventions(people, spells, spec, model, rng) -> pd.DataFrame:
    """Incidents per occupied bed day (Poisson), reduced for focus groups after go-live; typed by group mix."""
    extract, go = _day(model.extract_date), _day(spec.pcref_go_live)
    a = spells["aday"].to_numpy()
    d = np.minimum(spells["dday"].to_numpy(), extract)
    focus = spells["focus"].to_numpy()
    rate = np.where(focus, model.ri_rate_per_bed_day["focus"], model.ri_rate_per_bed_day["reference"])
    eff = np.where(focus, model.ri_implementation_effect, 1.0)
    pre = np.clip(np.minimum(d, go) - a, 0, None)
    post = np.clip(d - np.maximum(a, go), 0, None)
    k_pre, k_post = rng.poisson(rate * pre), rng.poisson(rate * eff * post)
    r_pre, r_post = np.repeat(np.arange(len(a)), k_pre), np.repeat(np.arange(len(a)), k_post)
    t_pre = a[r_pre] + rng.random(len(r_pre)) * pre[r_pre]
    t_post = np.maximum(a[r_post], go) + rng.random(len(r_post)) * post[r_post]
    row, t = np.concatenate([r_pre, r_post]), np.concatenate([t_pre, t_post])
    order = np.lexsort((row, t))
    row, t = row[order], t[order]
    itype = np.empty(len(row), dtype=object)
    for key, mask in (("reference", ~focus[row]), ("focus", focus[row])):
        shares = model.ri_type_shares[key]
        p = np.array(list(shares.values()))
        itype[mask] = rng.choice(list(shares), size=int(mask.sum()), p=p / p.sum())
    minutes = np.where(np.isin(itype, ["05", "06"]), rng.gamma(2.0, 240.0, len(row)), rng.gamma(2.0, 8.0, len(row)))
    start = pd.to_datetime(t * 86400, unit="s").floor("min")
    end = start + pd.to_timedelta(np.ceil(minutes), unit="min")
    return pd.DataFrame({
        "intervention_id": [f"{spec.site_id.upper()}-RI{i:07d}" for i in range(len(row))],
        "person_id": spells["person_id"].to_numpy()[row], "spell_id": spells["spell_id"].to_numpy()[row],
        "intervention_type": itype, "reason": rng.choice([f"{c:02d}" for c in range(1, 10)], size=len(row)),
        "start_datetime": start.strftime("%Y-%m-%dT%H:%M"), "end_datetime": end.strftime("%Y-%m-%dT%H:%M"),
    })


def simulate_outcome_measures(people, referrals, index, follow, model, rng) -> pd.DataFrame:
    """Paired HoNOS assessments (baseline near referral, follow-up ~6 months later), change by group."""
    n = len(people)
    paired = rng.random(n) < model.outcome_paired_share
    base_day = index["index_day"].to_numpy() + rng.integers(0, 15, n)
    follow_day = base_day + rng.integers(150, 211, n)
    has_follow = paired & (follow_day - follow["index_day"].to_numpy() < follow["end"].to_numpy())
    has_base = paired & (base_day - follow["index_day"].to_numpy() < follow["end"].to_numpy())
    base = np.clip(np.rint(rng.normal(model.honos_baseline_mean, 5.0, n)), 0, 48)
    mean_change = np.where(people["focus"], model.honos_change_mean["focus"], model.honos_change_mean["reference"])
    later = np.clip(np.rint(base + rng.normal(mean_change, model.honos_change_sd)), 0, 48)
    ref_id = index["referral_id"].to_numpy()
    pid = people["person_id"].to_numpy()
    out = pd.concat([
        pd.DataFrame({"person_id": pid[has_base], "referral_id": ref_id[has_base], "score": base[has_base],
                      "day": base_day[has_base]}),
        pd.DataFrame({"person_id": pid[has_follow], "referral_id": ref_id[has_follow], "score": later[has_follow],
                      "day": follow_day[has_follow]}),
    ], ignore_index=True).sort_values(["day", "referral_id"], kind="stable").reset_index(drop=True)
    return pd.DataFrame({
        "assessment_id": [f"A{i:08d}" for i in range(len(out))], "person_id": out["person_id"],
        "referral_id": out["referral_id"], "tool": "HoNOS", "score": out["score"].astype(int),
        "assessment_date": _dates(out["day"]),
    })


def simulate_patient_experience(people, index, spec, model, rng) -> pd.DataFrame:
    """Anonymous Friends-and-Family-style ratings (1-5) with self-reported ethnicity; no person_id."""
    n = rng.poisson(len(people) * model.experience_responses_per_person)
    who = rng.integers(0, len(people), n)
    day = rng.integers(_day(model.window_start), _day(model.window_end) + 1, n)
    focus = people["focus"].to_numpy()[who]
    p_pos = np.where(focus, model.positive_experience_prob["focus"], model.positive_experience_prob["reference"])
    p_pos = p_pos + np.where(focus & (day >= _day(spec.pcref_go_live)), model.experience_post_go_live_gain_focus, 0.0)
    positive = rng.random(n) < p_pos
    rating = np.where(positive, rng.choice([4, 5], n, p=[0.55, 0.45]), rng.choice([1, 2, 3], n, p=[0.2, 0.3, 0.5]))
    codes = recorded_ethnicity(people["true_ethnic_category"].to_numpy()[who], day, spec, model, rng)
    order = np.lexsort((np.arange(n), day))
    return pd.DataFrame({
        "response_id": [f"{spec.site_id.upper()}-X{i:07d}" for i in range(n)],
        "ethnic_category": codes[order], "response_date": _dates(pd.Series(day[order])), "rating": rating[order],
    })


def recorded_ethnicity(true_codes: np.ndarray, day: np.ndarray, spec, model, rng) -> np.ndarray:
    """Recorded code: the true code with probability rising linearly over the window (faster after go-live)."""
    w0, w1 = _day(model.window_start), _day(model.window_end)
    frac = np.clip((day - w0) / (w1 - w0), 0, 1)
    p_rec = spec.completeness_start + (spec.completeness_end - spec.completeness_start) * frac
    after = np.clip((day - _day(spec.pcref_go_live)) / DAYS_PER_YEAR, 0, None)
    p_rec = np.minimum(p_rec + model.recording_gain_after_go_live_per_year * after, 0.995)
    recorded = rng.random(len(true_codes)) < p_rec
    split = model.unrecorded_split
    unrec = rng.choice(list(split), size=len(true_codes), p=np.array(list(split.values())))
    return np.where(recorded, true_codes, unrec)


def write_site(folder: Path, spec, model, tables, population, fmt: str) -> None:
    """Write one site's tables (CSV or Parquet), ``site.yml`` and ``population.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "parquet":
            df.astype("string").to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    population.to_csv(folder / "population.csv", index=False, lineterminator="\n")
    site = {"site_id": spec.site_id, "name": spec.name, "pcref_go_live": spec.pcref_go_live.isoformat(),
            "extract_date": model.extract_date.isoformat()}
    site.update({k: getattr(spec, k) for k in ("icb", "ods_code") if getattr(spec, k, "")})
    (folder / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))


def _day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _dates(days) -> pd.Series:
    """Day numbers (since 1970-01-01) to ISO date strings; NaN/negative to empty."""
    s = pd.Series(days, copy=False).astype("float64")
    out = pd.to_datetime(s, unit="D").dt.strftime("%Y-%m-%d")
    return out.where(s.notna(), "").astype(object).to_numpy()


def _spec_dict(spec: SiteSpec) -> dict:
    d = asdict(spec)
    d["pcref_go_live"] = spec.pcref_go_live.isoformat()
    return d
