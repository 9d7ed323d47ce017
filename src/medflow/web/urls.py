"""Routes of the clinician web UI."""

from django.contrib.auth import views as auth_views
from django.urls import path

from medflow.web import views
from medflow.web.auth import LoginView

app_name = "web"

P = "patients/<uuid:patient_id>/"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("clinic/", views.switch_clinic, name="switch_clinic"),
    path("patients/", views.search, name="search"),
    path("patients/results/", views.search_results, name="search_results"),
    path("patients/new/", views.patient_new, name="patient_new"),
    path(P, views.chart, name="chart"),
    path(P + "edit/", views.patient_edit, name="patient_edit"),
    path(P + "timeline/", views.timeline, name="timeline"),
    path(P + "history/", views.history, name="history"),
    path(P + "audit/", views.audit, name="audit"),
    path(P + "vitals/new/", views.vitals_new, name="vitals_new"),
    path(P + "diagnoses/new/", views.diagnosis_new, name="diagnosis_new"),
    path(P + "allergies/new/", views.allergy_new, name="allergy_new"),
    path(P + "allergies/<uuid:allergy_id>/close/", views.allergy_close, name="allergy_close"),
    path(P + "prescriptions/new/", views.prescription_new, name="prescription_new"),
    path(P + "prescriptions/<uuid:prescription_id>/approve/", views.prescription_approve,
         name="prescription_approve"),
    path(P + "prescriptions/<uuid:prescription_id>/discontinue/", views.prescription_discontinue,
         name="prescription_discontinue"),
    path(P + "labs/new/", views.lab_order_new, name="lab_order_new"),
    path(P + "labs/<uuid:order_id>/result/", views.lab_result_new, name="lab_result_new"),
    path(P + "notes/new/", views.note_new, name="note_new"),
    path(P + "notes/<uuid:note_id>/sign/", views.note_sign, name="note_sign"),
    path(P + "notes/<uuid:note_id>/amend/", views.note_amend, name="note_amend"),
    path(P + "appointments/new/", views.appointment_new, name="appointment_new"),
    path(P + "appointments/<uuid:appointment_id>/check-in/", views.appointment_check_in,
         name="appointment_check_in"),
]
